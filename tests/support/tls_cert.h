// Test helper: a throwaway CA (DIR/ca.pem) and a server certificate for one DNS name signed by it
// (DIR/srv.pem, DIR/srv.key), made with the openssl command line. For servers that must speak
// TLS to a client that verifies names against a CA file (KMS endpoints: https only).
#pragma once

#include <cstdlib>
#include <string>

namespace sn_test {

// True when the three files were written.
inline bool make_test_tls(const std::string& dir, const std::string& dns_name) {
  std::string cmd = "cd " + dir + " && openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 "
                    "-subj /CN=test-ca -addext basicConstraints=critical,CA:TRUE >/dev/null 2>&1 && "
                    "openssl req -newkey rsa:2048 -nodes -keyout srv.key -out srv.csr -subj /CN=kms >/dev/null 2>&1 && "
                    "printf 'subjectAltName=DNS:" + dns_name + "\\n' > ext && "
                    "openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile ext "
                    "-out srv.pem >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

}  // namespace sn_test
