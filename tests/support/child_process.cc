#include "support/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

namespace cgpu::testing {

using namespace std::chrono_literals;

std::string Process::Log() const {
  std::ifstream in(log_path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

long Process::PeakRssKb() const {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stol(line.substr(6));
  }
  return 0;
}

int Process::Wait(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      pid = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    std::this_thread::sleep_for(10ms);
  }
  return -1;
}

Process::~Process() {
  if (pid > 0) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
}

std::unique_ptr<Process> Spawn(const std::vector<std::string>& args, const std::string& dir) {
  auto process = std::make_unique<Process>();
  process->log_path = dir + "/out.log";
  process->pid = fork();
  if (process->pid == 0) {
    int fd = open(process->log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    std::vector<char*> argv{const_cast<char*>(CGPU_GUARD_BINARY)};
    for (const auto& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    execv(CGPU_GUARD_BINARY, argv.data());
    _exit(127);
  }
  return process;
}

int WaitForPort(const Process& process, const std::string& field, const std::string& scheme) {
  const std::regex pattern("\"" + field + "\":\"" + scheme + R"(://127\.0\.0\.1:(\d+)/)");
  for (int i = 0; i < 500; ++i) {
    std::smatch match;
    const std::string log = process.Log();
    if (std::regex_search(log, match, pattern)) return std::stoi(match[1]);
    std::this_thread::sleep_for(10ms);
  }
  return 0;
}

bool WaitForLog(const Process& process, const std::string& text,
                std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (process.Log().find(text) == std::string::npos) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
  return true;
}

std::vector<std::string> ServeArgs(const std::string& dir, const std::vector<std::string>& extra) {
  std::vector<std::string> args = {
      "serve",      "--listen",       "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
      "--tls-cert", dir + "/tls.crt", "--tls-key",   dir + "/tls.key"};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

}  // namespace cgpu::testing
