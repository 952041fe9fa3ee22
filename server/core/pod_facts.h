// PodFacts: what cgpu-guard needs to know about one pod, as plain data.
//
// Filled from a Pod object (watch event or admission request) by adapters/pod_facts_reader. Only
// pods that share a GPU through cGPU matter for counting: those requesting aliyun.com/gpu-mem or
// aliyun.com/gpu-core.percentage. Which GPU(s) such a pod got is written on it by the scheduler
// before binding; a pod counts once per GPU it uses, not once per container.
#pragma once

#include <string>
#include <vector>

namespace cgpu {

enum class PodPhase { kPending, kRunning, kSucceeded, kFailed, kUnknown };

struct GpuAssignment {
  std::vector<int> indices;  // sorted, unique; empty when none is written
  std::string source;        // "annotation ALIYUN_COM_GPU_MEM_IDX", for messages
  std::string error;         // set when an annotation is present but unreadable

  bool known() const { return !indices.empty(); }
};

struct PodFacts {
  std::string namespace_name;
  std::string name;
  std::string uid;
  std::string node_name;  // spec.nodeName: empty until bound
  PodPhase phase = PodPhase::kPending;
  bool shares_gpu = false;  // requests cGPU resources (aliyun.com/gpu-mem, gpu-core.percentage)
  GpuAssignment gpus;

  std::string Key() const { return namespace_name + "/" + name; }
  // Holds its GPU slots: a cGPU pod that is bound and has not finished. A terminating pod still
  // holds them until it is gone, since its processes may still run.
  bool HoldsGpu() const {
    return shares_gpu && !node_name.empty() && phase != PodPhase::kSucceeded &&
           phase != PodPhase::kFailed;
  }
};

}  // namespace cgpu
