#include "shell/tls_certificates.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <fstream>
#include <sstream>

namespace cgpu {

StatusOr<std::string> ReadPemFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot read " + path);
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

namespace {

// Mozilla's "intermediate" TLS 1.2 list: ECDHE key exchange with AEAD ciphers only.
// TLS 1.3 suites are OpenSSL's defaults, all of which are strong.
constexpr char kTls12Ciphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
using BioPtr = std::unique_ptr<BIO, BioDeleter>;

BioPtr MemoryBio(const std::string& text) {
  return BioPtr(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

int SelectCertificate(SSL* ssl, void* arg) {
  auto* store = static_cast<CertificateStore*>(arg);
  std::shared_ptr<const CertificateBundle> bundle = store->Current();
  // SSL_use_cert_and_key takes its own references, so the bundle may be swapped out after this.
  return SSL_use_cert_and_key(ssl, bundle->leaf(), bundle->key(), bundle->chain(), 1) == 1 ? 1 : 0;
}

}  // namespace

std::string TakeOpenSslError() {
  unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return "unknown OpenSSL error";
  char text[256];
  ERR_error_string_n(code, text, sizeof(text));
  return text;
}

StatusOr<std::shared_ptr<const CertificateBundle>> CertificateBundle::FromPem(
    const std::string& cert_pem, const std::string& key_pem) {
  std::shared_ptr<CertificateBundle> bundle(new CertificateBundle());
  BioPtr cert_bio = MemoryBio(cert_pem);
  bundle->leaf_ = PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr);
  if (bundle->leaf_ == nullptr) {
    return InvalidArgument("no PEM certificate found (" + TakeOpenSslError() + ")");
  }
  bundle->chain_ = sk_X509_new_null();
  while (X509* intermediate = PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr)) {
    sk_X509_push(bundle->chain_, intermediate);
  }
  ERR_clear_error();  // the loop above ends on a "no start line" error by design

  BioPtr key_bio = MemoryBio(key_pem);
  bundle->key_ = PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr);
  if (bundle->key_ == nullptr) {
    return InvalidArgument("no PEM private key found (" + TakeOpenSslError() + ")");
  }
  if (X509_check_private_key(bundle->leaf_, bundle->key_) != 1) {
    ERR_clear_error();
    return InvalidArgument("the private key does not match the certificate");
  }
  std::tm expiry{};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(bundle->leaf_), &expiry) != 1) {
    return InvalidArgument("the certificate's notAfter time cannot be read");
  }
  bundle->not_after_ = timegm(&expiry);
  return std::shared_ptr<const CertificateBundle>(std::move(bundle));
}

CertificateBundle::~CertificateBundle() {
  X509_free(leaf_);
  EVP_PKEY_free(key_);
  if (chain_ != nullptr) sk_X509_pop_free(chain_, X509_free);
}

std::string CertificateBundle::subject() const {
  char text[512];
  X509_NAME_oneline(X509_get_subject_name(leaf_), text, sizeof(text));
  return text;
}

StatusOr<std::unique_ptr<CertificateStore>> CertificateStore::Load(std::string cert_file,
                                                                   std::string key_file) {
  std::unique_ptr<CertificateStore> store(
      new CertificateStore(std::move(cert_file), std::move(key_file)));
  StatusOr<bool> loaded = store->ReloadIfChanged();
  if (!loaded.ok()) return loaded.status();
  return store;
}

std::shared_ptr<const CertificateBundle> CertificateStore::Current() const {
  std::lock_guard<std::mutex> lock(mu_);
  return current_;
}

StatusOr<bool> CertificateStore::ReloadIfChanged() {
  StatusOr<std::string> cert_pem = ReadPemFile(cert_file_);
  if (!cert_pem.ok()) return cert_pem.status();
  StatusOr<std::string> key_pem = ReadPemFile(key_file_);
  if (!key_pem.ok()) return key_pem.status();
  if (*cert_pem == seen_cert_pem_ && *key_pem == seen_key_pem_) return false;
  // Remember what we tried even if it fails: a bad pair is reported once, not every interval.
  // A rotation writes the certificate and the key one after the other, so the first look may
  // see a mismatched pair; the next look, after the second write, loads it.
  seen_cert_pem_ = *cert_pem;
  seen_key_pem_ = *key_pem;
  auto bundle = CertificateBundle::FromPem(*cert_pem, *key_pem);
  if (!bundle.ok()) {
    return InvalidArgument(cert_file_ + " / " + key_file_ + ": " + bundle.status().message());
  }
  std::lock_guard<std::mutex> lock(mu_);
  current_ = std::move(bundle).value();
  return true;
}

bool ConfigureServerTls(SSL_CTX& context, CertificateStore& store) {
  SSL_CTX* ctx = &context;
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) return false;
  if (SSL_CTX_set_cipher_list(ctx, kTls12Ciphers) != 1) return false;
  SSL_CTX_set_options(
      ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_cert_cb(ctx, SelectCertificate, &store);
  return true;
}

}  // namespace cgpu

namespace cgpu {

Status RequireClientCertificates(SSL_CTX& context, const std::string& ca_pem) {
  BioPtr bio = MemoryBio(ca_pem);
  if (!bio) return Internal("out of memory reading the client CA");
  STACK_OF(X509_NAME)* names = sk_X509_NAME_new_null();
  X509_STORE* store = SSL_CTX_get_cert_store(&context);
  int count = 0;
  bool added = true;
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    added = added && X509_STORE_add_cert(store, cert) == 1 &&
            sk_X509_NAME_push(names, X509_NAME_dup(X509_get_subject_name(cert))) > 0;
    X509_free(cert);
    ++count;
  }
  ERR_clear_error();  // the read that ended the loop leaves "no start line" behind
  if (count == 0 || !added) {
    sk_X509_NAME_pop_free(names, X509_NAME_free);
    return InvalidArgument(count == 0 ? "no PEM certificate in it" : "cannot use its certificates");
  }
  SSL_CTX_set_client_CA_list(&context, names);  // takes ownership; tells clients whom to show
  SSL_CTX_set_verify(&context, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  // Resumed sessions skip the certificate; OpenSSL refuses them without a context id.
  static constexpr unsigned char kSessionContext[] = "cgpu-guard";
  SSL_CTX_set_session_id_context(&context, kSessionContext, sizeof(kSessionContext) - 1);
  return OkStatus();
}

}  // namespace cgpu
