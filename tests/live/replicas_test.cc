// Three replicas of the real binary (`serve --arbiter=claims`) against the tests' API server, the
// way the chart runs them: bursts of concurrent bindings for one GPU, spread round-robin over the
// replicas, allow exactly the free slots: every round, with a replica SIGKILLed mid-burst, with
// the API server refusing claim writes with 409, and with the claims unreachable (stale policy).
//
// The pods' GPU allocations are in every replica's cache before the burst, as in ACK: the
// scheduler writes the allocation, then posts the Binding (admission_controller.h). Every
// binding still reads its pod (a quorum GET) and its node's claim Lease, and writes the Lease.
// An allowed binding is then carried out in the store, as the API server does once admission
// allows it (support/ack_scheduler.h BindInStore): the pod's nodeName reaches every replica's
// watch, and the count no longer leans on the claim, which lapses after --claim-ttl. Without
// that, a burst slower than the TTL (a sanitizer build on a loaded machine) would see its first
// claims lapse while their pods never show up, and hand their slots out again.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "live/live_serve_fixture.h"
#include "support/ack_scheduler.h"

namespace cgpu {
namespace {

using nlohmann::json;
using testing::MakeNode;
using testing::MakePod;
using testing::WaitUntil;

constexpr char kLeases[] = "/apis/coordination.k8s.io/v1/namespaces/cgpu-guard/leases";

#ifdef CGPU_SANITIZED
constexpr int kRounds = 3;  // a sanitizer build is 5-20 times slower; the plain build runs 10
#else
constexpr int kRounds = 10;
#endif

class ReplicasTest : public LiveServeTest {
 protected:
  struct Replica {
    std::string dir;
    std::unique_ptr<testing::Process> process;
    int webhook = 0;
    int ops = 0;
  };

  void StartReplicas(const std::vector<std::string>& extra = {}) {
    for (int i = 0; i < 3; ++i) {
      Replica replica;
      replica.dir = dir_ + "/replica-" + std::to_string(i);
      std::filesystem::create_directories(replica.dir);
      testing::WriteServingFiles(replica.dir, ca_, "cgpu-guard");
      std::vector<std::string> args = testing::ServeArgs(
          replica.dir,
          {"--kubeconfig", dir_ + "/kubeconfig", "--shutdown-delay", "0s", "--arbiter", "claims",
           "--arbiter-namespace", "cgpu-guard", "--replica-name", "replica-" + std::to_string(i),
           // Generous: the count must not depend on how fast a loaded test
           // machine answers (the chart's is 1s).
           "--live-read-deadline", "20s"});
      args.insert(args.end(), extra.begin(), extra.end());
      replica.process = testing::Spawn(args, replica.dir);
      replica.webhook = testing::WaitForPort(*replica.process, "webhook", "https");
      replica.ops = testing::WaitForPort(*replica.process, "metrics", "http");
      ASSERT_NE(replica.webhook, 0) << replica.process->Log();
      replicas_.push_back(std::move(replica));
    }
    for (Replica& replica : replicas_) {
      ASSERT_TRUE(WaitUntil([&] { return Ops(replica, "/readyz").first == 200; }))
          << replica.process->Log();
    }
  }

  std::pair<int, std::string> Ops(const Replica& replica, const std::string& path) {
    httplib::Client ops("127.0.0.1", replica.ops);
    auto result = ops.Get(path);
    return result ? std::make_pair(result->status, result->body) : std::make_pair(-1, "");
  }
  double ReplicaMetric(const Replica& replica, const std::string& sample) {
    const std::string text = Ops(replica, "/metrics").second;
    const size_t at = text.find("\n" + sample + " ");
    return at == std::string::npos ? -1 : std::stod(text.substr(at + sample.size() + 2));
  }

  // Node `node`: `running` pods on GPU 0, `pending` waiting with GPU 0 written on them; every
  // live replica has seen them all (unless `wait` is false: WaitUntilSeen() then waits).
  void AddBurst(const std::string& node, int running, int pending, bool wait = true) {
    api_.Add("nodes", MakeNode({.name = node}));
    for (int i = 0; i < running; ++i) {
      api_.Add("pods",
               MakePod({.name = node + "-run-" + std::to_string(i), .node = node, .gpus = {0}}));
    }
    for (int i = 0; i < pending; ++i) {
      api_.Add(
          "pods",
          MakePod({.name = node + "-new-" + std::to_string(i), .gpus = {0}, .phase = "Pending"}));
    }
    pods_ += running + pending;
    if (wait) WaitUntilSeen();
  }

  // Every live replica's cache holds every pod added. Its pod gauge follows a once-a-second
  // ticker: a test adds what it needs at once and waits here once.
  void WaitUntilSeen() {
    for (Replica& replica : replicas_) {
      if (replica.process == nullptr) continue;
      ASSERT_TRUE(WaitUntil([&] {
        return ReplicaMetric(replica, "cgpu_guard_cluster_pods") == pods_;
      })) << ReplicaMetric(replica, "cgpu_guard_cluster_pods")
          << " of " << pods_;
    }
  }

  // What one binding review got: allowed (and then bound in the store), denied (with the status
  // code), or no answer.
  struct Outcome {
    bool answered = false;
    bool allowed = false;
    int code = 0;
    std::string message;
    std::string warnings;  // as JSON
  };
  Outcome Bind(const Replica& replica, const std::string& pod, const std::string& node) {
    httplib::SSLClient client("127.0.0.1", replica.webhook);
    client.set_ca_cert_path((dir_ + "/ca.crt").c_str());
    client.enable_server_certificate_verification(true);
    client.set_read_timeout(std::chrono::seconds(30));
    auto result = client.Post("/validate",
                              testing::MakeReview("uid-" + pod, "pods", "binding", "CREATE", pod,
                                                  testing::MakeBinding(pod, node)),
                              "application/json");
    Outcome outcome;
    if (!result || result->status != 200) return outcome;
    const json response = json::parse(result->body)["response"];
    outcome.answered = true;
    outcome.allowed = response["allowed"] == true;
    outcome.code = response.value("/status/code"_json_pointer, 0);
    outcome.message = response.value("/status/message"_json_pointer, "");
    if (response.contains("warnings")) outcome.warnings = response["warnings"].dump();
    if (outcome.allowed) testing::BindInStore(api_, "default", pod, "", node);
    return outcome;
  }

  // `pending` bindings at once, binding i through replica i % 3 (a dead replica's bindings get no
  // answer, as the API server would see it). `during(i)` runs on binding i's thread first.
  std::vector<Outcome> Burst(const std::string& node, int pending,
                             const std::function<void(int)>& during = {}) {
    std::vector<Outcome> outcomes(static_cast<size_t>(pending));
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (int i = 0; i < pending; ++i) {
      threads.emplace_back([&, i] {
        while (!go) std::this_thread::yield();
        if (during) during(i);
        outcomes[static_cast<size_t>(i)] =
            Bind(replicas_[static_cast<size_t>(i) % replicas_.size()],
                 node + "-new-" + std::to_string(i), node);
      });
    }
    go = true;
    for (auto& thread : threads) thread.join();
    return outcomes;
  }

  static int Allowed(const std::vector<Outcome>& outcomes) {
    int allowed = 0;
    for (const Outcome& outcome : outcomes) {
      allowed += outcome.allowed ? 1 : 0;
      // An allowed placement says nothing; one with a warning was not counted as it should be.
      EXPECT_EQ(outcome.warnings, "") << "allowed: " << outcome.allowed;
    }
    return allowed;
  }

  std::vector<Replica> replicas_;
  int pods_ = 0;
};

TEST_F(ReplicasTest, BurstsAllowExactlyTheFreeSlotsEveryRound) {
  StartReplicas();
  struct Case {
    int running;
    int pending;
  };
  const auto node_of = [](const Case& c, int round) {
    return "gpu-" + std::to_string(c.running) + "-" + std::to_string(round);
  };
  // Each round's node and pods are its own: all of them are in place before the first burst.
  for (const Case c : {Case{15, 60}, Case{10, 30}}) {
    for (int round = 0; round < kRounds; ++round) {
      AddBurst(node_of(c, round), c.running, c.pending, /*wait=*/false);
    }
  }
  WaitUntilSeen();
  for (const Case c : {Case{15, 60}, Case{10, 30}}) {
    for (int round = 0; round < kRounds; ++round) {
      const std::string node = node_of(c, round);
      SCOPED_TRACE(node);
      const std::vector<Outcome> outcomes = Burst(node, c.pending);
      EXPECT_EQ(Allowed(outcomes), 20 - c.running);
      for (const Outcome& outcome : outcomes) {
        ASSERT_TRUE(outcome.answered);
        if (!outcome.allowed) {
          EXPECT_NE(outcome.message.find("GPU 0 already runs 20"), std::string::npos)
              << outcome.message;
        }
      }
    }
  }
  // Every replica took part, and every allowed placement went through a claim.
  double claimed = 0;
  for (const Replica& replica : replicas_) {
    const double mine = ReplicaMetric(replica, R"(cgpu_guard_claims_total{outcome="claimed"})");
    EXPECT_GT(mine, 0);
    claimed += mine;
  }
  EXPECT_EQ(claimed, kRounds * (5 + 10));
}

// Claim writes refused with 409 at random (a third of them, as if other writers came first) are
// read again, recounted and retried within the review's deadline: the count stays exact.
TEST_F(ReplicasTest, ConflictsFromTheApiServerAreRetried) {
  StartReplicas();
  AddBurst("gpu-1", 15, 60);
  api_.FailAtRandom(33, 409, testing::RequestKind::kUpdate, kLeases);
  api_.FailAtRandom(33, 409, testing::RequestKind::kCreate, kLeases);
  EXPECT_EQ(Allowed(Burst("gpu-1", 60)), 5);
  double conflicts = 0;
  for (const Replica& replica : replicas_) {
    conflicts += ReplicaMetric(replica, "cgpu_guard_claim_conflicts_total");
  }
  EXPECT_GT(conflicts, 0);
  api_.ClearFaults();
}

// A claim only bridges the moment between an allowed binding and its pod's nodeName in every
// replica's watch. Once every claim of the burst has lapsed, the watch alone counts the bound
// pods: the GPU stays full.
TEST_F(ReplicasTest, OnceTheClaimsLapseTheBoundPodsKeepTheGpuFull) {
  StartReplicas({"--stale-after", "1s", "--claim-ttl", "2s"});
  AddBurst("gpu-1", 15, 9);
  const std::vector<Outcome> outcomes = Burst("gpu-1", 9);
  ASSERT_EQ(Allowed(outcomes), 5);
  // Every claim in the node's Lease is past its expiry (by the same clock the replicas use).
  ASSERT_TRUE(WaitUntil([&] {
    const std::optional<json> lease = api_.Find("leases", "cgpu-guard-claims-gpu-1", "cgpu-guard");
    if (!lease) return false;
    const json claims =
        json::parse(lease->value("/metadata/annotations/cgpu-guard.io~1claims"_json_pointer, "[]"));
    const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
    for (const json& claim : claims) {
      if (claim.value("expiresUnixMs", int64_t{0}) >= now_ms) return false;
    }
    return true;
  }));
  // The pods denied in the burst, tried again through every replica.
  int tried = 0;
  for (size_t i = 0; i < outcomes.size(); ++i) {
    if (outcomes[i].allowed) continue;
    const Outcome again = Bind(replicas_[static_cast<size_t>(tried) % replicas_.size()],
                               "gpu-1-new-" + std::to_string(i), "gpu-1");
    ++tried;
    EXPECT_TRUE(again.answered) << "binding " << i;
    EXPECT_FALSE(again.allowed) << "binding " << i << " after the claims lapsed";
  }
  EXPECT_EQ(tried, 4);
}

// A replica killed in the middle of a burst: never more than the free slots. Its claims written
// but never answered hold their slots until --claim-ttl; then the others hand them out.
TEST_F(ReplicasTest, AReplicaKilledMidBurstNeverOverfillsAndItsClaimsLapse) {
  StartReplicas({"--stale-after", "1s", "--claim-ttl", "3s"});
  AddBurst("gpu-1", 15, 60);
  std::atomic<int> started{0};
  std::chrono::steady_clock::time_point killed;
  const std::vector<Outcome> outcomes = Burst("gpu-1", 60, [&](int) {
    if (++started == 20) {
      killed = std::chrono::steady_clock::now();
      kill(replicas_[0].process->pid, SIGKILL);
    }
  });
  const int allowed = Allowed(outcomes);
  EXPECT_LE(allowed, 5);
  EXPECT_GE(allowed, 1) << "the live replicas went on deciding";
  // No leader, so no handover: every binding sent to a surviving replica was answered.
  for (size_t i = 0; i < outcomes.size(); ++i) {
    if (i % 3 != 0) EXPECT_TRUE(outcomes[i].answered) << "binding " << i;
  }
  replicas_[0].process->Wait(std::chrono::seconds(10));
  replicas_[0].process.reset();
  replicas_.erase(replicas_.begin());

  // The slots left, once any claims of the dead replica lapse: pods retried through the others
  // (the scheduler retries a binding that got no answer) get exactly them, and no more.
  std::vector<bool> placed(60);
  for (size_t i = 0; i < 60; ++i) placed[i] = outcomes[i].allowed;
  int more = 0;
  EXPECT_TRUE(WaitUntil(
      [&] {
        for (size_t i = 0; i < 60 && allowed + more < 5; ++i) {
          if (placed[i]) continue;
          if (Bind(replicas_[i % 2], "gpu-1-new-" + std::to_string(i), "gpu-1").allowed) {
            placed[i] = true;
            ++more;
          }
        }
        return allowed + more == 5;
      },
      std::chrono::seconds(30)));
  EXPECT_EQ(allowed + more, 5);
  // Bounded by --claim-ttl (3 s here): the dead replica's claims for bindings it never answered.
  std::printf("all free slots handed out %.2f s after the kill (%d during the burst, %d after)\n",
              std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count(),
              allowed, more);
  // A pod not placed yet finds the GPU full (one placed already would be a retried binding,
  // allowed again without counting twice).
  const size_t unplaced =
      static_cast<size_t>(std::find(placed.begin(), placed.end(), false) - placed.begin());
  ASSERT_LT(unplaced, 60u);
  EXPECT_FALSE(Bind(replicas_[0], "gpu-1-new-" + std::to_string(unplaced), "gpu-1").allowed)
      << "the GPU is full";
}

// The claims cannot be read or written: the stale policy answers (fail-closed: 503, no pod on
// the GPU), and once the API server answers again the free slots are handed out exactly.
TEST_F(ReplicasTest, UnreachableClaimsAreAnsweredByTheStalePolicy) {
  StartReplicas({"--stale-policy", "fail-closed"});
  AddBurst("gpu-1", 15, 30);
  api_.FailNext(1'000'000, 503, testing::RequestKind::kAny, kLeases);
  const std::vector<Outcome> refused = Burst("gpu-1", 30);
  EXPECT_EQ(Allowed(refused), 0);
  for (const Outcome& outcome : refused) {
    EXPECT_EQ(outcome.code, 503);
    EXPECT_NE(outcome.message.find("could not be recorded"), std::string::npos) << outcome.message;
  }
  api_.ClearFaults();
  EXPECT_EQ(Allowed(Burst("gpu-1", 30)), 5);
}

}  // namespace
}  // namespace cgpu
