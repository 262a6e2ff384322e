#!/usr/bin/env python3
"""Keeps the public headers (include/shield_nitro/**) hiding their internals and documented.

Usage: check_headers.py INCLUDE_DIR [HEADER...]   (exit 0 clean, 1 findings, 2 usage)

Rules, each finding printed as FILE:LINE: RULE: what:
  impl      `struct Impl;` / `struct State;` (or `class`) outside a private or protected
            section: the pimpl type is nobody's business outside the class.
  json      "nlohmann" in a header of an installed module (INSTALLED, the libraries that
            `cmake --install` ships): SDK signatures carry typed structs or JSON text.
  forward   a `class X;` / `struct X;` inside our namespaces naming a class that no header
            under include/ defines, i.e. a class of src/ (hide it behind a private nested
            type). Accepted inside a namespace `detail`: shield.h's opaque state/access pattern.
            Declarations outside any namespace are third-party (OpenSSL) and not checked.
  comment   a public class (`class X {`) without a comment above it, unless the file's
            opening comment names it; a public function (namespace scope, or a public
            section) without a comment. Heuristic: walking up from the declaration through
            consecutive non-blank lines (a group of related declarations), a `//` or /* */
            comment must come before a blank line, a line ending in `{` or an access label;
            a trailing comment on the declaration also counts. Exempt: constructors,
            destructors, operators, `= delete` / `= default`, `override` (the base documents
            it), friend declarations, and the bodies of inline functions.
SKIP lists headers another change owns for now, and JSON_PENDING installed headers whose JSON
signatures wait for changes elsewhere (each with why); both are reported, and an entry that no
longer applies is itself a finding, so the lists only shrink.
"""
import os
import re
import sys

INSTALLED = {"core", "cbor", "shield", "channel", "attest", "kms", "net", "parent", "nsm"}
SKIP = {}
JSON_PENDING = {}

CLASS_HEAD = re.compile(r"^(template\s*<.*>\s*)?(class|struct|union)\s+(\w+)(\s+final)?\b[^;()]*$")
NAMESPACE_HEAD = re.compile(r"^(inline\s+)?namespace\b")
ENUM_HEAD = re.compile(r"^enum\b")
ACCESS = re.compile(r"^(public|private|protected)\s*:")
FORWARD = re.compile(r"^(class|struct)\s+(\w+)\s*;")
DEFINITION = re.compile(r"\b(?:class|struct|union)\s+(\w+)(?:\s+final)?\s*(?::[^;{()]*)?\{")
IMPL = re.compile(r"^(struct|class)\s+(Impl|State)\s*;")
NOT_FUNCTION = re.compile(r"^(return|using|typedef|static_assert|friend|#|template\s*<[^>]*>\s*$)")


def strip_strings(s):
    return re.sub(r'"(\\.|[^"\\])*"', '""', re.sub(r"'(\\.|[^'\\])'", "''", s))


def is_function(stmt, class_name):
    """True for a declaration of a function the rule applies to."""
    s = re.sub(r"^template\s*<[^;{]*?>\s*", "", stmt)
    if NOT_FUNCTION.match(s):
        return False
    paren = s.find("(")
    if paren < 0:
        return False
    head = s[:paren]
    if "=" in head or "{" in head or "operator" in head:
        return False
    if re.search(r"=\s*(delete|default)\s*;?$", s) or re.search(r"\boverride\b", s):
        return False
    name = re.findall(r"~?\w+", head)
    if not name:
        return False
    fn = name[-1]
    if class_name and fn in (class_name, "~" + class_name):
        return False  # constructor / destructor
    if fn.startswith("~") or fn in ("if", "for", "while", "switch", "sizeof", "decltype", "alignof"):
        return False
    return len(name) >= 2  # a return type and a name: not a macro or a constructor call


def defined_classes(root):
    """Names of every class, struct and union defined in the headers under root."""
    names = set()
    for d, _, files in os.walk(root):
        for f in files:
            if f.endswith(".h"):
                with open(os.path.join(d, f), encoding="utf-8") as fh:
                    names.update(DEFINITION.findall(fh.read()))
    return names


def check_file(path, module, json_pending=False, defined=None):
    if defined is None:
        defined = defined_classes(os.path.dirname(path))
    findings = []
    with open(path, encoding="utf-8") as f:
        lines = blank_block_comments(f.read().split("\n"))
    if module in INSTALLED and not json_pending:
        for i, line in enumerate(lines, 1):
            if "nlohmann" in line:
                findings.append((i, "json", "nlohmann in a header of the installed module '%s'" % module))
    # The file's opening comment may document its main class.
    file_comment = ""
    for line in lines:
        if not line.strip().startswith("//"):
            break
        file_comment += line + "\n"
    # scopes: list of (kind, class_name, access); kinds: ns, class, other
    scopes = [("ns", None, "public")]
    stmt, stmt_line = "", 0
    for i, raw in enumerate(lines, 1):
        code = strip_strings(raw.split("//", 1)[0]).strip()
        if not code:
            continue
        if code.startswith("#"):
            continue
        kind, cname, access = scopes[-1]
        if kind == "other":
            # inside a function body or initializer: only follow the braces
            for ch in code:
                if ch == "{":
                    scopes.append(("other", None, None))
                elif ch == "}":
                    scopes.pop()
            continue
        m = ACCESS.match(code)
        if m and kind == "class":
            scopes[-1] = (kind, cname, m.group(1))
            code = code[m.end():].strip()
            if not code:
                continue
        if not stmt:
            stmt_line = i
        stmt = (stmt + " " + code).strip()
        # a statement ends at ';' or '{' or '}' outside parentheses
        depth, pos = 0, 0
        while pos < len(stmt):
            ch = stmt[pos]
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
            elif depth == 0 and ch in ";{}":
                head = stmt[:pos].strip()
                kind, cname, access = scopes[-1]
                public = kind == "ns" or (kind == "class" and access == "public")
                fwd = FORWARD.match(head + ";")
                if ch == ";" and fwd and kind == "ns" and len(scopes) > 1 and not (cname or "").endswith("detail") and fwd.group(2) not in defined:
                    findings.append((stmt_line, "forward", "forward declaration of %s, which no public header defines" % fwd.group(2)))
                if ch == ";" and IMPL.match(head + ";") and not (kind == "class" and access in ("private", "protected")):
                    findings.append((stmt_line, "impl", "`%s;` outside a private section" % head))
                if ch in ";{" and public and kind != "other" and is_function(head + ch, cname):
                    if not has_comment(lines, stmt_line, i):
                        findings.append((stmt_line, "comment", "no contract comment on `%s`" % shorten(head)))
                if ch == "{":
                    cm = CLASS_HEAD.match(head)
                    if (cm and public and cm.group(2) == "class" and not has_comment(lines, stmt_line, i)
                            and not re.search(r"\b%s\b" % cm.group(3), file_comment)):
                        findings.append((stmt_line, "comment", "no comment on class %s" % cm.group(3)))
                    if cm:
                        default = "private" if cm.group(2) == "class" else "public"
                        scopes.append(("class", cm.group(3), default))
                    elif NAMESPACE_HEAD.match(head) or head.startswith('extern ""'):
                        scopes.append(("ns", head.split()[-1] if NAMESPACE_HEAD.match(head) else None, "public"))
                    else:
                        scopes.append(("other", None, None))
                        # the rest of the line belongs to the body
                        rest = stmt[pos + 1:]
                        for c2 in rest:
                            if c2 == "{":
                                scopes.append(("other", None, None))
                            elif c2 == "}":
                                scopes.pop()
                        stmt, pos = "", 0
                        break
                elif ch == "}":
                    if len(scopes) > 1:
                        scopes.pop()
                stmt = stmt[pos + 1:].strip()
                stmt_line = i
                pos = 0
                continue
            pos += 1
    return findings


def blank_block_comments(lines):
    """/* ... */ lines become `//` lines: they count as comments and hold no code."""
    out, inside = [], False
    for line in lines:
        if inside or "/*" in line:
            start = 0 if inside else line.index("/*")
            end = line.find("*/", start)
            inside = end < 0
            line = line[:start] + "//" + ("" if inside else line[end + 2:])
        out.append(line)
    return out


def has_comment(lines, first, last):
    for j in range(first - 1, last):
        if "//" in lines[j]:
            return True
    j = first - 2
    while j >= 0 and lines[j].strip():
        line = lines[j].strip()
        if line.startswith("//"):
            return True
        if line.endswith("{") or ACCESS.match(line):
            return False  # a class's comment does not document its first members
        j -= 1
    return False


def shorten(s):
    s = re.sub(r"\s+", " ", s)
    return s if len(s) <= 80 else s[:77] + "..."


def main(argv):
    if len(argv) < 2:
        print(__doc__)
        return 2
    root = argv[1]
    headers = argv[2:]
    if not headers:
        for d, _, files in os.walk(root):
            headers += [os.path.join(d, f) for f in files if f.endswith(".h")]
    defined = defined_classes(root)
    bad = 0
    for h in sorted(headers):
        rel = os.path.relpath(h, root)
        if rel in SKIP:
            print("%s: skipped: %s" % (rel, SKIP[rel]))
            continue
        parts = rel.split(os.sep)
        module = parts[1] if len(parts) > 2 else ""
        pending = rel in JSON_PENDING
        if pending:
            print("%s: JSON allowed for now: %s" % (rel, JSON_PENDING[rel]))
            with open(h, encoding="utf-8") as f:
                if "nlohmann" not in f.read():
                    print("%s: stale: JSON_PENDING lists it but it has no JSON left" % rel)
                    bad += 1
        for line, rule, what in check_file(h, module, pending, defined):
            print("%s:%d: %s: %s" % (rel, line, rule, what))
            bad += 1
    print("%d finding(s)" % bad)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
