// Where the Kubernetes API server is and how to authenticate to it.
//
// Two sources, as client-go has them: the pod's service account (InClusterConfig) and a
// kubeconfig file (LoadKubeconfig). Both return a KubeConfig whose certificates and keys are PEM
// text in memory and whose every file reference has been read (a token file is read once here
// and again by KubeClient on each new connection, since projected service account tokens rotate).
// Both check what they return: the CA bundle and the client certificate and key parse, and the
// key belongs to the certificate. Every error names the file (or variable) and what is wrong, so
// a bad configuration stops start-up with a message a person can act on. Only bearer tokens and
// client certificates are supported; exec plugins, auth providers and basic auth are refused by
// name rather than silently ignored. Plain functions of their inputs: thread-safe.
#pragma once

#include <openssl/types.h>

#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "core/status.h"

namespace cgpu {

struct KubeConfig {
  std::string host;    // "10.0.0.1", "api.example.com", "fd00::1" (no scheme, no brackets)
  int port = 443;      // 1..65535
  std::string ca_pem;  // PEM bundle to verify the API server; empty: system default store
  bool insecure_skip_tls_verify = false;  // no server verification at all (kubeconfig option)
  std::string token;                      // bearer token given inline (or read from token_file)
  std::string token_file;       // when set, re-read on every new connection (rotated tokens)
  std::string client_cert_pem;  // client certificate auth (with client_key_pem); leaf first
  std::string client_key_pem;
  std::string source;   // "in-cluster" or "kubeconfig /path (context x)", for messages
  std::string context;  // the kubeconfig context read (current-context when none was asked for)
};

inline constexpr char kServiceAccountDir[] = "/var/run/secrets/kubernetes.io/serviceaccount";

// KUBERNETES_SERVICE_HOST / KUBERNETES_SERVICE_PORT from `getenv`; token and ca.crt from
// `service_account_dir`. The host may be an IPv6 literal, with or without brackets. Both files
// are required: without ca.crt the API server's certificate could not be verified.
StatusOr<KubeConfig> InClusterConfig(
    const std::function<const char*(const char*)>& getenv = ::getenv,
    const std::string& service_account_dir = kServiceAccountDir);

// A kubeconfig file: `context`, or its current-context when empty. Reads cluster.server
// (https://host[:port], IPv6 in brackets), certificate-authority (relative to the kubeconfig's
// directory) or certificate-authority-data (base64), insecure-skip-tls-verify; user token,
// tokenFile, client-certificate(-data), client-key(-data). File references are resolved and read
// here.
StatusOr<KubeConfig> LoadKubeconfig(const std::string& path, const std::string& context = "");

// The checks both loaders apply, for configurations built by hand: host and port are set, the
// CA bundle holds at least one certificate, client certificate and key come together, parse and
// match. Messages are prefixed with `config.source`.
Status CheckKubeConfig(const KubeConfig& config);

// The PEM certificates in `pem`, in order; the caller owns them (X509_free). Empty when none
// parse. Leaves OpenSSL's error queue clear.
std::vector<X509*> ParsePemCertificates(const std::string& pem);

// Decodes standard base64 (line breaks allowed), as kubeconfig *-data fields hold it, with
// OpenSSL. Invalid input is an InvalidArgument error naming `what`.
StatusOr<std::string> DecodeBase64(const std::string& text, const std::string& what);

}  // namespace cgpu
