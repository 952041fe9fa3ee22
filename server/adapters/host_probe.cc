#include "adapters/host_probe.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include "core/host_facts.h"

extern char** environ;

namespace cgpu {
namespace {

// Files under /proc and /sys report a size of 0 or 4096 whatever they hold: read, don't stat.
constexpr size_t kMaxFileBytes = 1 << 20;              // a proc entry or a version file
constexpr size_t kMaxPackageDatabaseBytes = 64 << 20;  // dpkg's status file on a busy host

// `path` as the host sees it, under the host root mounted at `root`. The host's own symlinks are
// followed inside the root: an absolute target ("/lib64/ld-2.28.so", as the host's loader and
// libraries are linked) starts again at the root, not at this container's "/", so the host's
// loader is never paired with this container's libc. ".." stops at the root. A component that
// does not exist (yet) ends the walk: the rest is appended as it is, for the caller's check.
std::string UnderRoot(const std::string& root_in, const std::string& path) {
  if (root_in.empty() || root_in == "/") return path;
  std::string root = root_in;
  while (root.size() > 1 && root.back() == '/') root.pop_back();
  std::vector<std::string> resolved;  // components under the root
  std::vector<std::string> pending;   // components still to walk, last first
  const auto push_components = [&pending](const std::string& text) {
    std::vector<std::string> parts;
    size_t start = 0;
    while (start <= text.size()) {
      const size_t slash = text.find('/', start);
      const std::string part = text.substr(start, slash - start);
      if (!part.empty() && part != ".") parts.push_back(part);
      if (slash == std::string::npos) break;
      start = slash + 1;
    }
    for (auto it = parts.rbegin(); it != parts.rend(); ++it) pending.push_back(*it);
  };
  const auto joined = [&root, &resolved] {
    std::string text = root;
    for (const std::string& part : resolved) text += "/" + part;
    return text;
  };
  push_components(path);
  int links = 0;
  while (!pending.empty()) {
    const std::string part = pending.back();
    pending.pop_back();
    if (part == "..") {
      if (!resolved.empty()) resolved.pop_back();
      continue;
    }
    resolved.push_back(part);
    const std::string here = joined();
    char target[4096];
    const ssize_t length = readlink(here.c_str(), target, sizeof(target) - 1);
    if (length < 0) {
      if (errno == EINVAL) continue;  // not a link
      // Missing or unreadable: the rest as it is.
      std::string rest = here;
      for (auto it = pending.rbegin(); it != pending.rend(); ++it) rest += "/" + *it;
      return rest;
    }
    if (++links > 40) return here;  // a loop: as it is, for the caller's check to fail
    target[length] = '\0';
    resolved.pop_back();
    if (target[0] == '/') resolved.clear();
    push_components(target);
  }
  return joined();
}

StatusOr<std::string> ReadSmallFile(const std::string& path, size_t limit) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Unavailable(path + ": " + (errno != 0 ? std::strerror(errno) : "cannot open"));
  }
  std::string content;
  char buffer[8192];
  while (in.read(buffer, sizeof(buffer)) || in.gcount() > 0) {
    content.append(buffer, static_cast<size_t>(in.gcount()));
    if (content.size() > limit) return Unavailable(path + ": larger than expected");
  }
  return content;
}

bool IsExecutable(const std::string& path) {
  struct stat info {};
  return stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode) && access(path.c_str(), X_OK) == 0;
}

// The first of the usual binary directories under the host root that holds `name`.
std::optional<std::string> FindHostTool(const std::string& root, const std::string& name) {
  for (const char* dir : {"/usr/bin/", "/usr/local/bin/", "/bin/", "/usr/sbin/", "/sbin/"}) {
    const std::string path = UnderRoot(root, dir + name);
    if (IsExecutable(path)) return path;
  }
  return std::nullopt;
}

using TextReader = std::function<std::optional<std::string>(std::string_view)>;

// One attempt: `text` (a file's content or a tool's output) read by `reader`. Records the miss
// and returns false when it gave nothing.
bool Try(ProbedFact& fact, const std::string& where, const StatusOr<std::string>& text,
         const TextReader& reader) {
  if (!text.ok()) {
    fact.misses.push_back(text.status().message());
    return false;
  }
  std::optional<std::string> value = reader(*text);
  if (value && !IsValidLabelValue(*value)) value.reset();
  if (!value) {
    fact.misses.push_back(where + ": no version in what it says");
    return false;
  }
  fact.value = std::move(value);
  fact.source = where;
  return true;
}

bool TryFile(ProbedFact& fact, const std::string& path, const TextReader& reader,
             size_t limit = kMaxFileBytes) {
  return Try(fact, path, ReadSmallFile(path, limit), reader);
}

// A host tool links against the host's libraries (libnvidia-ml, libnvidia-container), which the
// agent's image does not have. Under a mounted host root it is run by the host's own dynamic
// loader with the host's library directories, so it sees the libraries it was built for.
std::vector<std::string> HostToolCommand(const std::string& root, const std::string& tool) {
  if (root.empty() || root == "/") return {tool};
  std::optional<std::string> loader;
  for (const char* candidate :
       {"/usr/lib64/ld-linux-x86-64.so.2", "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        "/usr/lib/ld-linux-aarch64.so.1", "/usr/lib64/ld-linux-aarch64.so.1",
        "/usr/lib/aarch64-linux-gnu/ld-linux-aarch64.so.1"}) {
    if (IsExecutable(UnderRoot(root, candidate))) {
      loader = UnderRoot(root, candidate);
      break;
    }
  }
  if (!loader) return {tool};
  std::string library_path;
  for (const char* dir :
       {"/usr/lib64", "/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib"}) {
    struct stat info {};
    const std::string path = UnderRoot(root, dir);
    if (stat(path.c_str(), &info) == 0 && S_ISDIR(info.st_mode)) {
      library_path += (library_path.empty() ? "" : ":") + path;
    }
  }
  return {*loader, "--library-path", library_path, tool};
}

bool TryTool(ProbedFact& fact, const HostProbeOptions& options, const std::string& name,
             const std::vector<std::string>& args, const TextReader& reader) {
  const std::optional<std::string> path = FindHostTool(options.host_root, name);
  if (!path) {
    fact.misses.push_back(name + ": not installed");
    return false;
  }
  std::vector<std::string> argv = HostToolCommand(options.host_root, *path);
  argv.insert(argv.end(), args.begin(), args.end());
  return Try(fact, *path + " " + args.front(), RunTool(argv, options.command_timeout), reader);
}

ProbedFact ProbeDriver(const HostProbeOptions& options) {
  ProbedFact fact;
  TryFile(fact, UnderRoot(options.host_root, "/proc/driver/nvidia/version"),
          DriverVersionFromProc) ||
      TryTool(fact, options, "nvidia-smi", {"--query-gpu=driver_version", "--format=csv,noheader"},
              DriverVersionFromNvidiaSmi);
  return fact;
}

ProbedFact ProbeCgpu(const HostProbeOptions& options) {
  ProbedFact fact;
  TryFile(fact, UnderRoot(options.host_root, options.cgpu_proc_file), CgpuVersionFromText) ||
      TryFile(fact, UnderRoot(options.host_root, "/sys/module/" + options.cgpu_module + "/version"),
              CgpuVersionFromText);
  return fact;
}

bool TryRpmDatabase(ProbedFact& fact, const HostProbeOptions& options) {
  const std::string database = UnderRoot(options.host_root, "/var/lib/rpm");
  struct stat info {};
  if (stat(database.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) {
    fact.misses.push_back(database + ": no RPM database");
    return false;
  }
  if (options.rpm_command.empty()) {
    fact.misses.push_back(database + ": reading RPM databases is turned off");
    return false;
  }
  for (const char* package : {"nvidia-container-toolkit", "libnvidia-container-tools"}) {
    if (Try(fact, "RPM package " + std::string(package) + " in " + database,
            RunTool({options.rpm_command, "--dbpath", database, "-q", "--queryformat",
                     "%{VERSION}\n", package},
                    options.command_timeout),
            ToolkitVersionFromRpmQuery)) {
      return true;
    }
  }
  return false;
}

ProbedFact ProbeToolkit(const HostProbeOptions& options) {
  ProbedFact fact;
  TryTool(fact, options, "nvidia-ctk", {"--version"}, ToolkitVersionFromCtk) ||
      TryFile(fact, UnderRoot(options.host_root, "/var/lib/dpkg/status"),
              ToolkitVersionFromDpkgStatus, kMaxPackageDatabaseBytes) ||
      TryRpmDatabase(fact, options) ||
      TryTool(fact, options, "nvidia-container-cli", {"--version"}, ToolkitVersionFromCli);
  return fact;
}

}  // namespace

std::string ProbedFact::Explain() const {
  if (value) return "from " + source;
  std::string text = "not found:";
  for (size_t i = 0; i < misses.size(); ++i) text += (i == 0 ? " " : "; ") + misses[i];
  return text;
}

HostFacts ProbeHost(const HostProbeOptions& options) {
  return HostFacts{ProbeCgpu(options), ProbeDriver(options), ProbeToolkit(options)};
}

namespace {

// How long a killed tool is waited for before it is left to a later call to reap.
constexpr auto kReapGrace = std::chrono::milliseconds(500);

// Tools killed on a timeout that had not died yet: reaped (without waiting) on later calls.
std::mutex unreaped_mu;
std::vector<pid_t> unreaped;  // guarded by unreaped_mu

bool ReapWithin(pid_t pid, std::chrono::milliseconds grace) {
  const auto deadline = std::chrono::steady_clock::now() + grace;
  while (true) {
    int status = 0;
    const pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid || (done < 0 && errno != EINTR)) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

void RememberUnreaped(pid_t pid) {
  std::lock_guard<std::mutex> lock(unreaped_mu);
  unreaped.push_back(pid);
}

void ReapLeftovers() {
  std::lock_guard<std::mutex> lock(unreaped_mu);
  std::erase_if(unreaped, [](pid_t pid) {
    int status = 0;
    const pid_t done = waitpid(pid, &status, WNOHANG);
    return done == pid || (done < 0 && errno != EINTR);
  });
}

}  // namespace

size_t UnreapedTools() {
  std::lock_guard<std::mutex> lock(unreaped_mu);
  return unreaped.size();
}

StatusOr<std::string> RunTool(const std::vector<std::string>& argv,
                              std::chrono::milliseconds timeout, size_t max_output) {
  const std::string name = argv.empty() ? "" : argv.front();
  int pipe_fds[2];
  if (argv.empty() || pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return Unavailable(name + ": cannot start (" + std::strerror(errno) + ")");
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  // The tool starts as if from a shell: in a process group of its own (so a timeout kills
  // whatever it started too), every signal at its default and none blocked (the agent blocks
  // SIGTERM and SIGINT to take them synchronously; a child must not inherit that).
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t none;
  sigset_t all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attributes, &none);
  posix_spawnattr_setsigdefault(&attributes, &all);
  posix_spawnattr_setpgroup(&attributes, 0);
  posix_spawnattr_setflags(&attributes,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  pid_t pid = -1;
  // A bare name ("rpm") is looked up on PATH; a path is run as it is.
  const int spawned = name.find('/') == std::string::npos
                          ? posix_spawnp(&pid, args[0], &actions, &attributes, args.data(), environ)
                          : posix_spawn(&pid, args[0], &actions, &attributes, args.data(), environ);
  posix_spawnattr_destroy(&attributes);
  posix_spawn_file_actions_destroy(&actions);
  close(pipe_fds[1]);
  if (spawned != 0) {
    close(pipe_fds[0]);
    return Unavailable(name + ": cannot run (" + std::strerror(spawned) + ")");
  }

  std::string output;
  bool timed_out = false;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd readable{pipe_fds[0], POLLIN, 0};
    const int ready = poll(&readable, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) continue;  // the deadline check above ends it
    char buffer[4096];
    const ssize_t n = read(pipe_fds[0], buffer, sizeof(buffer));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the tool closed its output
    if (output.size() < max_output) {
      output.append(buffer, std::min(static_cast<size_t>(n), max_output - output.size()));
    }
  }
  close(pipe_fds[0]);
  if (timed_out) {
    kill(-pid, SIGKILL);  // the group: the tool and anything it started
    // A process in uninterruptible sleep (nvidia-smi on a wedged GPU) dies only when the kernel
    // lets it: wait a little, then leave it to be reaped on a later call rather than hang here.
    if (!ReapWithin(pid, kReapGrace)) RememberUnreaped(pid);
    return Unavailable(name + ": no answer within " + std::to_string(timeout.count()) + " ms");
  }
  ReapLeftovers();
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFSIGNALED(status)) {
    return Unavailable(name + ": killed by signal " + std::to_string(WTERMSIG(status)));
  }
  if (WEXITSTATUS(status) == 127) {
    return Unavailable(name + ": cannot run here (exit 127: a library or interpreter is missing)");
  }
  if (WEXITSTATUS(status) != 0) {
    return Unavailable(name + ": exited with status " + std::to_string(WEXITSTATUS(status)));
  }
  return output;
}

}  // namespace cgpu
