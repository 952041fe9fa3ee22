// Serving certificates that can be replaced while the server runs.
//
// Kubernetes rotates a mounted Secret by swapping the files in place. CertificateStore holds the
// current certificate/key pair behind a shared_ptr; ReloadIfChanged() re-reads the files, and
// when their bytes changed and the new pair is valid (parses, key matches certificate), swaps it
// in. An invalid new pair is reported and the old one kept, so a half-written Secret never takes
// the webhook down. ConfigureServerTls() makes every new TLS handshake pick up the current pair
// through OpenSSL's certificate callback; connections already open keep theirs.
// All methods are thread-safe.
#pragma once

#include <openssl/ssl.h>

#include <ctime>
#include <memory>
#include <mutex>
#include <string>

#include "core/status.h"

namespace cgpu {

// A file's whole text (certificates and keys are small); NotFound naming the path.
StatusOr<std::string> ReadPemFile(const std::string& path);

// One parsed certificate chain and its private key. Immutable once built.
class CertificateBundle {
 public:
  // Parses PEM text: the leaf certificate first, then any intermediates.
  static StatusOr<std::shared_ptr<const CertificateBundle>> FromPem(const std::string& cert_pem,
                                                                    const std::string& key_pem);
  ~CertificateBundle();
  CertificateBundle(const CertificateBundle&) = delete;
  CertificateBundle& operator=(const CertificateBundle&) = delete;

  X509* leaf() const { return leaf_; }
  EVP_PKEY* key() const { return key_; }
  STACK_OF(X509) * chain() const { return chain_; }
  std::time_t not_after() const { return not_after_; }  // expiry, seconds since the epoch
  std::string subject() const;

 private:
  CertificateBundle() = default;
  X509* leaf_ = nullptr;
  EVP_PKEY* key_ = nullptr;
  STACK_OF(X509) * chain_ = nullptr;
  std::time_t not_after_ = 0;
};

class CertificateStore {
 public:
  // Reads and validates both files; fails with a message naming the file when either is bad.
  static StatusOr<std::unique_ptr<CertificateStore>> Load(std::string cert_file,
                                                          std::string key_file);

  std::shared_ptr<const CertificateBundle> Current() const;

  // true: a new pair was loaded. false: the files are unchanged (or unchanged since the last
  // failed attempt, which is not reported twice). Error: the files changed but are not usable.
  StatusOr<bool> ReloadIfChanged();

 private:
  CertificateStore(std::string cert_file, std::string key_file)
      : cert_file_(std::move(cert_file)), key_file_(std::move(key_file)) {}

  const std::string cert_file_;
  const std::string key_file_;

  mutable std::mutex mu_;
  std::shared_ptr<const CertificateBundle> current_;  // guarded by mu_
  std::string seen_cert_pem_;  // file contents at the last attempt; only ReloadIfChanged touches
  std::string seen_key_pem_;
};

// Sets TLS >= 1.2, forward-secret AEAD ciphers only, no renegotiation and no compression, and
// serves the certificate `store` holds at each handshake. `store` must outlive the context.
bool ConfigureServerTls(SSL_CTX& context, CertificateStore& store);

// Requires every client to present a certificate that chains to one of the CA certificates in
// `ca_pem` (PEM, one or more): a client without one, or with another CA's, fails the handshake.
// For a webhook the API server is configured to reach with a client certificate
// (AdmissionConfiguration kubeConfigFile). Fails when `ca_pem` holds no certificate.
Status RequireClientCertificates(SSL_CTX& context, const std::string& ca_pem);

// The last OpenSSL error as text, and clears the queue.
std::string TakeOpenSslError();

}  // namespace cgpu
