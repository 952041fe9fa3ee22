#include "adapters/kube_config.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <memory>
#include <sstream>
#include <vector>

namespace cgpu {
namespace {

// Thrown inside this file only and caught in LoadKubeconfig: walking a YAML tree reads far more
// clearly with one exit for every error. Never crosses the public interface.
struct KubeconfigError {
  std::string message;
};

std::string Trim(std::string text) {
  const auto not_space = [](unsigned char c) { return !std::isspace(c); };
  text.erase(text.begin(), std::find_if(text.begin(), text.end(), not_space));
  text.erase(std::find_if(text.rbegin(), text.rend(), not_space).base(), text.end());
  return text;
}

StatusOr<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot read " + path + " (missing or not readable)");
  std::ostringstream content;
  content << in.rdbuf();
  if (in.bad()) return Unavailable("error while reading " + path);
  return content.str();
}

std::string DirectoryOf(const std::string& path) {
  const auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

std::string ResolveRelative(const std::string& base_dir, const std::string& path) {
  if (path.empty() || path.front() == '/') return path;
  return base_dir + "/" + path;
}

struct BioDeleter {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Deleter {
  void operator()(X509* cert) const { X509_free(cert); }
};
struct KeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using UniqueBio = std::unique_ptr<BIO, BioDeleter>;
using UniqueX509 = std::unique_ptr<X509, X509Deleter>;
using UniqueKey = std::unique_ptr<EVP_PKEY, KeyDeleter>;

UniqueBio MemoryBio(const std::string& text) {
  return UniqueBio(BIO_new_mem_buf(text.data(), static_cast<int>(text.size())));
}

std::vector<UniqueX509> ParseCertificates(const std::string& pem) {
  std::vector<UniqueX509> certificates;
  for (X509* cert : ParsePemCertificates(pem)) certificates.emplace_back(cert);
  return certificates;
}

bool IsIpv6Literal(const std::string& host) { return host.find(':') != std::string::npos; }

// "fd00::1", "[fd00::1]" -> "fd00::1"; everything else unchanged.
std::string StripBrackets(const std::string& host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    return host.substr(1, host.size() - 2);
  }
  return host;
}

StatusOr<int> ParsePort(const std::string& text, const std::string& what) {
  if (text.empty() || text.size() > 5 ||
      !std::all_of(text.begin(), text.end(), [](unsigned char c) { return std::isdigit(c); })) {
    return InvalidArgument(what + ": port \"" + text + "\" is not a number in 1..65535");
  }
  const int port = std::stoi(text);
  if (port < 1 || port > 65535) {
    return InvalidArgument(what + ": port " + text + " is not in 1..65535");
  }
  return port;
}

// https://host[:port][/] with the host possibly a bracketed IPv6 literal.
Status ParseServerUrl(const std::string& url, const std::string& what, KubeConfig& config) {
  constexpr std::string_view kHttps = "https://";
  std::string lower = url;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower.rfind("http://", 0) == 0) {
    return InvalidArgument(what + ": \"" + url +
                           "\" is plain HTTP; cgpu-guard talks to the API server over TLS only");
  }
  if (lower.rfind(kHttps, 0) != 0) {
    return InvalidArgument(what + ": \"" + url + "\" is not an https:// URL");
  }
  std::string rest = url.substr(kHttps.size());
  std::string path;
  if (const auto slash = rest.find('/'); slash != std::string::npos) {
    path = rest.substr(slash);
    rest.resize(slash);
  }
  if (!path.empty() && path != "/") {
    return InvalidArgument(what + ": \"" + url + "\" has a path prefix (" + path +
                           "), which is not supported");
  }
  if (rest.find('@') != std::string::npos) {
    return InvalidArgument(what + ": \"" + url + "\" carries user information, not supported");
  }
  std::string host;
  std::string port;
  if (!rest.empty() && rest.front() == '[') {
    const auto close = rest.find(']');
    if (close == std::string::npos) {
      return InvalidArgument(what + ": \"" + url + "\" has an unterminated IPv6 literal");
    }
    host = rest.substr(1, close - 1);
    const std::string after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        return InvalidArgument(what + ": \"" + url + "\" has text after the IPv6 literal");
      }
      port = after.substr(1);
    }
  } else {
    const auto colon = rest.find(':');
    if (colon != std::string::npos && rest.find(':', colon + 1) != std::string::npos) {
      return InvalidArgument(what + ": \"" + url +
                             "\": an IPv6 host must be in brackets, as in https://[fd00::1]:6443");
    }
    host = rest.substr(0, colon);
    if (colon != std::string::npos) port = rest.substr(colon + 1);
  }
  if (host.empty()) return InvalidArgument(what + ": \"" + url + "\" names no host");
  config.host = host;
  config.port = 443;
  if (!port.empty()) {
    StatusOr<int> parsed = ParsePort(port, what);
    if (!parsed.ok()) return parsed.status();
    config.port = *parsed;
  }
  return OkStatus();
}

class KubeconfigReader {
 public:
  KubeconfigReader(std::string path, YAML::Node root)
      : path_(std::move(path)), dir_(DirectoryOf(path_)), root_(std::move(root)) {}

  [[noreturn]] void Fail(const YAML::Node& node, const std::string& what) const {
    const int line = node.IsDefined() ? node.Mark().line + 1 : 0;
    throw KubeconfigError{"kubeconfig " + path_ + (line > 0 ? ":" + std::to_string(line) : "") +
                          ": " + what};
  }

  KubeConfig Read(const std::string& wanted_context) {
    if (!root_.IsMap()) Fail(root_, "expected a mapping (apiVersion, clusters, contexts, users)");
    std::string context_name = wanted_context;
    if (context_name.empty()) {
      const YAML::Node current = root_["current-context"];
      if (!current.IsDefined() || current.IsNull() || Scalar(current, "current-context").empty()) {
        Fail(root_, "no current-context is set and no context was given");
      }
      context_name = Scalar(current, "current-context");
    }
    const YAML::Node context = Named("contexts", "context", context_name);
    const std::string cluster_name = Text(context, "cluster", "context \"" + context_name + "\"");
    const YAML::Node cluster = Named("clusters", "cluster", cluster_name);
    const YAML::Node user_node = context["user"];
    YAML::Node user;
    std::string user_name;
    if (user_node.IsDefined() && !user_node.IsNull()) {
      user_name = Scalar(user_node, "context \"" + context_name + "\".user");
      if (!user_name.empty()) user = Named("users", "user", user_name);
    }

    KubeConfig config;
    config.source = "kubeconfig " + path_ + " (context " + context_name + ")";
    config.context = context_name;
    ReadCluster(cluster, "cluster \"" + cluster_name + "\"", config);
    if (user.IsDefined()) ReadUser(user, "user \"" + user_name + "\"", config);
    return config;
  }

 private:
  std::string Scalar(const YAML::Node& node, const std::string& what) const {
    if (!node.IsScalar()) Fail(node, what + ": expected a single value");
    return node.Scalar();
  }

  std::string Text(const YAML::Node& parent, const std::string& key, const std::string& what) {
    const YAML::Node child = parent[key];
    if (!child.IsDefined() || child.IsNull()) Fail(parent, what + " has no " + key);
    const std::string value = Scalar(child, what + "." + key);
    if (value.empty()) Fail(child, what + "." + key + " is empty");
    return value;
  }

  std::string OptionalText(const YAML::Node& parent, const std::string& key,
                           const std::string& what) {
    const YAML::Node child = parent[key];
    if (!child.IsDefined() || child.IsNull()) return "";
    return Scalar(child, what + "." + key);
  }

  bool OptionalBool(const YAML::Node& parent, const std::string& key, const std::string& what) {
    const YAML::Node child = parent[key];
    if (!child.IsDefined() || child.IsNull()) return false;
    const std::string value = Scalar(child, what + "." + key);
    bool parsed = false;
    if (!YAML::convert<bool>::decode(child, parsed)) {
      Fail(child, what + "." + key + ": \"" + value + "\" is not true or false");
    }
    return parsed;
  }

  // The `inner` mapping of the entry called `name` in the list `list` (clusters, contexts, users).
  YAML::Node Named(const std::string& list, const std::string& inner, const std::string& name) {
    const YAML::Node entries = root_[list];
    std::string known;
    if (entries.IsDefined() && !entries.IsNull()) {
      if (!entries.IsSequence()) Fail(entries, list + ": expected a list");
      for (const auto& entry : entries) {
        if (!entry.IsMap()) Fail(entry, list + ": every entry must be a mapping");
        const std::string entry_name = OptionalText(entry, "name", list + "[]");
        if (entry_name == name) {
          const YAML::Node body = entry[inner];
          if (!body.IsDefined() || !body.IsMap()) {
            Fail(entry, list + " entry \"" + name + "\" has no " + inner + " mapping");
          }
          return body;
        }
        known += (known.empty() ? "" : ", ") + entry_name;
      }
    }
    Fail(entries.IsDefined() ? entries : root_, inner + " \"" + name + "\" not found (" + list +
                                                    ": " + (known.empty() ? "none" : known) + ")");
  }

  std::string Decode(const YAML::Node& parent, const std::string& key, const std::string& what) {
    const std::string text = OptionalText(parent, key, what);
    StatusOr<std::string> decoded = DecodeBase64(text, what + "." + key);
    if (!decoded.ok()) Fail(parent[key], decoded.status().message());
    return *decoded;
  }

  std::string ReadReferenced(const YAML::Node& parent, const std::string& key,
                             const std::string& what) {
    const std::string path = ResolveRelative(dir_, OptionalText(parent, key, what));
    StatusOr<std::string> content = ReadWholeFile(path);
    if (!content.ok()) Fail(parent[key], what + "." + key + ": " + content.status().message());
    return *content;
  }

  // Either `key` (a file, relative to the kubeconfig) or `key`-data (base64), not both.
  std::string FileOrData(const YAML::Node& parent, const std::string& key,
                         const std::string& what) {
    const bool has_file = !OptionalText(parent, key, what).empty();
    const bool has_data = !OptionalText(parent, key + "-data", what).empty();
    if (has_file && has_data) {
      Fail(parent[key], what + " sets both " + key + " and " + key + "-data; keep one");
    }
    if (has_data) return Decode(parent, key + "-data", what);
    if (has_file) return ReadReferenced(parent, key, what);
    return "";
  }

  void ReadCluster(const YAML::Node& cluster, const std::string& what, KubeConfig& config) {
    const std::string server = Text(cluster, "server", what);
    if (Status status = ParseServerUrl(server, what + ".server", config); !status.ok()) {
      Fail(cluster["server"], status.message());
    }
    config.ca_pem = FileOrData(cluster, "certificate-authority", what);
    config.insecure_skip_tls_verify = OptionalBool(cluster, "insecure-skip-tls-verify", what);
    if (config.insecure_skip_tls_verify && !config.ca_pem.empty()) {
      // client-go refuses this pair too: the intent is ambiguous.
      Fail(cluster, what + " sets both insecure-skip-tls-verify and a certificate authority");
    }
    if (!OptionalText(cluster, "proxy-url", what).empty()) {
      Fail(cluster["proxy-url"], what + ".proxy-url: proxies are not supported");
    }
  }

  void ReadUser(const YAML::Node& user, const std::string& what, KubeConfig& config) {
    if (const YAML::Node exec = user["exec"]; exec.IsDefined() && !exec.IsNull()) {
      const YAML::Node command = exec["command"];
      Fail(exec, what + " authenticates with an exec plugin (" +
                     (command.IsScalar() ? "command: " + command.Scalar() : "exec") +
                     "), which cgpu-guard does not support; use a service account token "
                     "(token or tokenFile) or a client certificate");
    }
    if (const YAML::Node provider = user["auth-provider"];
        provider.IsDefined() && !provider.IsNull()) {
      const YAML::Node name = provider["name"];
      Fail(provider, what + " authenticates with an auth-provider (" +
                         (name.IsScalar() ? name.Scalar() : "unnamed") +
                         "), which cgpu-guard does not support; use a service account token "
                         "(token or tokenFile) or a client certificate");
    }
    if (!OptionalText(user, "username", what).empty() ||
        !OptionalText(user, "password", what).empty()) {
      Fail(user, what +
                     " uses basic authentication (username/password), which cgpu-guard does "
                     "not support; use a service account token or a client certificate");
    }
    if (!OptionalText(user, "as", what).empty()) {
      Fail(user["as"], what + ".as: impersonation is not supported");
    }

    config.token = OptionalText(user, "token", what);
    const std::string token_file = OptionalText(user, "tokenFile", what);
    if (!token_file.empty()) {
      config.token_file = ResolveRelative(dir_, token_file);
      const std::string token = Trim(ReadReferenced(user, "tokenFile", what));
      if (config.token.empty()) config.token = token;
    }
    config.client_cert_pem = FileOrData(user, "client-certificate", what);
    config.client_key_pem = FileOrData(user, "client-key", what);
  }

  const std::string path_;
  const std::string dir_;
  const YAML::Node root_;
};

}  // namespace

StatusOr<std::string> DecodeBase64(const std::string& text, const std::string& what) {
  std::unique_ptr<EVP_ENCODE_CTX, decltype(&EVP_ENCODE_CTX_free)> context(EVP_ENCODE_CTX_new(),
                                                                          EVP_ENCODE_CTX_free);
  if (!context) return Internal("out of memory decoding " + what);
  // EVP_DecodeUpdate, unlike EVP_DecodeBlock, skips line breaks and strips the padding.
  std::string decoded(text.size() / 4 * 3 + 3 + 80, '\0');
  int written = 0;
  int total = 0;
  EVP_DecodeInit(context.get());
  const int update = EVP_DecodeUpdate(
      context.get(), reinterpret_cast<unsigned char*>(decoded.data()), &written,
      reinterpret_cast<const unsigned char*>(text.data()), static_cast<int>(text.size()));
  total = written;
  if (update < 0 ||
      EVP_DecodeFinal(context.get(), reinterpret_cast<unsigned char*>(decoded.data()) + total,
                      &written) < 0) {
    return InvalidArgument(what + " is not valid base64");
  }
  total += written;
  decoded.resize(static_cast<size_t>(total));
  if (decoded.empty() && !Trim(text).empty()) {
    return InvalidArgument(what + " is not valid base64");
  }
  return decoded;
}

std::vector<X509*> ParsePemCertificates(const std::string& pem) {
  std::vector<X509*> certificates;
  UniqueBio bio = MemoryBio(pem);
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    certificates.push_back(cert);
  }
  ERR_clear_error();  // the loop ends on an expected "no start line"
  return certificates;
}

Status CheckKubeConfig(const KubeConfig& config) {
  const std::string& source = config.source.empty() ? "Kubernetes client config" : config.source;
  if (config.host.empty()) return InvalidArgument(source + ": no API server host");
  if (config.port < 1 || config.port > 65535) {
    return InvalidArgument(source + ": port " + std::to_string(config.port) +
                           " is not in 1..65535");
  }
  if (!config.ca_pem.empty() && ParseCertificates(config.ca_pem).empty()) {
    return InvalidArgument(source + ": the certificate authority holds no PEM certificate");
  }
  if (config.client_cert_pem.empty() != config.client_key_pem.empty()) {
    return InvalidArgument(source + ": a client certificate needs both certificate and key");
  }
  if (!config.client_cert_pem.empty()) {
    std::vector<UniqueX509> chain = ParseCertificates(config.client_cert_pem);
    if (chain.empty()) {
      return InvalidArgument(source + ": the client certificate is not a PEM certificate");
    }
    UniqueBio bio = MemoryBio(config.client_key_pem);
    UniqueKey key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
    ERR_clear_error();
    if (!key) return InvalidArgument(source + ": the client key is not a PEM private key");
    if (X509_check_private_key(chain.front().get(), key.get()) != 1) {
      ERR_clear_error();
      return InvalidArgument(source + ": the client key does not match the client certificate");
    }
  }
  return OkStatus();
}

StatusOr<KubeConfig> InClusterConfig(const std::function<const char*(const char*)>& getenv,
                                     const std::string& service_account_dir) {
  const char* host = getenv("KUBERNETES_SERVICE_HOST");
  const char* port = getenv("KUBERNETES_SERVICE_PORT");
  if (host == nullptr || *host == '\0' || port == nullptr || *port == '\0') {
    return NotFound(
        "not running in a Kubernetes pod: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT "
        "must both be set (or give a kubeconfig)");
  }
  KubeConfig config;
  config.source = "in-cluster";
  config.host = StripBrackets(host);
  StatusOr<int> parsed_port = ParsePort(port, "in-cluster: KUBERNETES_SERVICE_PORT");
  if (!parsed_port.ok()) return parsed_port.status();
  config.port = *parsed_port;
  if (!IsIpv6Literal(config.host) && config.host.find_first_of("[]/ ") != std::string::npos) {
    return InvalidArgument("in-cluster: KUBERNETES_SERVICE_HOST \"" + std::string(host) +
                           "\" is not a host name or IP address");
  }

  config.token_file = service_account_dir + "/token";
  StatusOr<std::string> token = ReadWholeFile(config.token_file);
  if (!token.ok())
    return NotFound("in-cluster: service account token: " + token.status().message());
  config.token = Trim(*token);
  if (config.token.empty()) {
    return InvalidArgument("in-cluster: service account token " + config.token_file + " is empty");
  }
  const std::string ca_file = service_account_dir + "/ca.crt";
  StatusOr<std::string> ca = ReadWholeFile(ca_file);
  if (!ca.ok()) return NotFound("in-cluster: API server CA: " + ca.status().message());
  config.ca_pem = *ca;
  if (Status status = CheckKubeConfig(config); !status.ok()) {
    return InvalidArgument(status.message() + " (" + ca_file + ")");
  }
  return config;
}

StatusOr<KubeConfig> LoadKubeconfig(const std::string& path, const std::string& context) {
  StatusOr<std::string> text = ReadWholeFile(path);
  if (!text.ok()) return NotFound("kubeconfig: " + text.status().message());
  try {
    KubeconfigReader reader(path, YAML::Load(*text));
    KubeConfig config = reader.Read(context);
    if (Status status = CheckKubeConfig(config); !status.ok()) return status;
    return config;
  } catch (const KubeconfigError& error) {
    return InvalidArgument(error.message);
  } catch (const YAML::Exception& error) {
    return InvalidArgument("kubeconfig " + path + ":" + std::to_string(error.mark.line + 1) +
                           ": not valid YAML: " + error.msg);
  } catch (const std::exception& error) {
    return InvalidArgument("kubeconfig " + path + ": " + error.what());
  }
}

}  // namespace cgpu
