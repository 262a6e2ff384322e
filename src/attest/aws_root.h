// Internal: the AWS Nitro Enclaves Root G1 certificate, compiled in.
#pragma once

namespace shield_nitro::attest::detail {

// root.pem from AWS_NitroEnclaves_Root-G1.zip; its DER hashes to kAwsRootG1Sha256Hex.
extern const char kAwsRootG1Pem[];

}  // namespace shield_nitro::attest::detail
