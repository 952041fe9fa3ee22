// Test PKI and TLS probes: a throwaway CA and serving certificates made in memory with OpenSSL,
// and raw handshakes that report what the server presented or why it refused.
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>

#include <string>

namespace cgpu::testing {

struct TestCa {
  std::string cert_pem;
  std::string key_pem;
};

struct ServingPair {
  std::string cert_pem;  // leaf certificate signed by the CA
  std::string key_pem;
};

TestCa MakeTestCa(const std::string& common_name = "cgpu-guard test CA");

// A serving certificate with SANs DNS:localhost and IP:127.0.0.1, valid for `days`
// (negative: already expired).
ServingPair MakeServingPair(const TestCa& ca, const std::string& common_name, int days = 30);

// A client certificate (extendedKeyUsage clientAuth) signed by `ca`.
ServingPair MakeClientPair(const TestCa& ca, const std::string& common_name);

struct HandshakeResult {
  bool ok = false;
  std::string peer_common_name;  // CN of the certificate the server presented
  std::string protocol;          // "TLSv1.3", ...
  std::string error;             // OpenSSL's reason when !ok
};

// Connects to 127.0.0.1:port and handshakes with the given protocol bounds (0 = library default)
// and cipher list (empty = default). Security level 0, so the client itself can offer old
// protocols and only the server can refuse them.
HandshakeResult Handshake(int port, int min_version = 0, int max_version = 0,
                          const std::string& ciphers = "");

// PEM to OpenSSL objects (nullptr when the text is not PEM); the caller frees them.
X509* ParseCert(const std::string& pem);
EVP_PKEY* ParseKey(const std::string& pem);

// A fresh directory under /tmp, removed (with what is in it) when the test process exits.
std::string MakeTempDir();
void WriteFile(const std::string& path, const std::string& content);
// <dir>/ca.crt (the CA), <dir>/tls.crt and <dir>/tls.key (a serving pair named `common_name`),
// as a Kubernetes TLS Secret is mounted.
void WriteServingFiles(const std::string& dir, const TestCa& ca, const std::string& common_name);

}  // namespace cgpu::testing
