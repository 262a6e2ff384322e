#!/usr/bin/env python3
"""check_headers.py finds each kind of violation and accepts the documented forms."""
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check_headers  # noqa: E402


def rules(text, module="net"):
    with tempfile.NamedTemporaryFile("w", suffix=".h", delete=False) as f:
        f.write(text)
    try:
        return [rule for _, rule, _ in check_headers.check_file(f.name, module)]
    finally:
        os.unlink(f.name)


class CheckHeadersTest(unittest.TestCase):
    def test_public_impl_is_found(self):
        self.assertIn("impl", rules("// A.\nclass A {\n public:\n  struct Impl;\n\n private:\n  int x_;\n};\n"))
        self.assertIn("impl", rules("// A.\nstruct A {\n  struct Impl;\n};\n"))

    def test_private_impl_is_accepted(self):
        self.assertEqual(rules("// A.\nclass A {\n public:\n  // Does f.\n  void f();\n\n private:\n"
                               "  struct Impl;\n  std::unique_ptr<Impl> impl_;\n};\n"), [])
        self.assertEqual(rules("// A.\nclass A {\n  struct Impl;\n};\n"), [])

    def test_json_in_installed_module_is_found(self):
        text = "#include <nlohmann/json.hpp>\n// J.\nstd::string f(const nlohmann::json& j);\n"
        self.assertEqual(rules(text, "parent").count("json"), 2)
        self.assertEqual(rules(text, "eif"), [])  # development-only module

    def test_function_without_comment_is_found(self):
        self.assertEqual(rules("namespace x {\n\nint f(int a);\n\n}  // namespace x\n"), ["comment"])
        self.assertEqual(rules("// C.\nclass C {\n public:\n  // G.\n  int g();\n\n  bool h() const;\n};\n"),
                         ["comment"])
        self.assertEqual(rules("// C.\nclass C {\n public:\n  static C make(\n      int a,\n      int b);\n};\n"),
                         ["comment"])

    def test_commented_and_exempt_functions_are_accepted(self):
        text = """// C.
class C {
 public:
  C();
  ~C();
  C(const C&) = delete;
  C& operator=(const C&) = delete;
  void run() override;

  // Both read the state.
  int a() const { return 1; }
  int b() const {
    return helper(2);
  }
  int c();  // trailing comment

 private:
  void undocumented_private();
};
"""
        self.assertEqual(rules(text), [])

    def test_class_without_comment_is_found_unless_the_file_comment_names_it(self):
        self.assertEqual(rules("namespace x {\n\nclass Alone {\n};\n\n}\n"), ["comment"])
        self.assertEqual(rules("// Alone: what it does.\n#pragma once\n\nclass Alone {\n};\n"), [])

    def test_forward_declaration_of_a_hidden_class_is_found(self):
        self.assertEqual(rules("namespace shield_nitro::x {\nclass HiddenInSrc;\n}\n"), ["forward"])
        self.assertEqual(rules("namespace shield_nitro::x {\nnamespace detail {\nstruct HiddenState;\n}\n}\n"), [])
        self.assertEqual(rules("struct stack_st_X509;\n"), [])  # third-party, outside our namespaces
        self.assertEqual(rules("namespace shield_nitro::x {\nclass Later;\n// L.\nclass Later {\n};\n}\n"), [])

    def test_block_comments_count(self):
        self.assertEqual(rules("/* Adds.\n * Never fails. */\nint add(int a, int b);\n"), [])


if __name__ == "__main__":
    unittest.main()
