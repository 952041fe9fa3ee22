// Kubernetes resource quantities ("2", "500m", "1Gi", "1e3"), read just far enough to tell whether
// an amount is above zero: the test ACK's GPU-sharing schedulers apply to a container's
// aliyun.com/gpu-mem and aliyun.com/gpu-core.percentage limits (see object_view_reader.h).
//
// The grammar is resource.Quantity's (kubernetes/apimachinery pkg/api/resource/quantity.go):
//
//   <quantity>        ::= <sign>? <number> <suffix>
//   <number>          ::= <digits> | <digits>.<digits> | <digits>. | .<digits>
//   <suffix>          ::= <binarySI> | <decimalSI> | <decimalExponent>
//   <binarySI>        ::= Ki | Mi | Gi | Ti | Pi | Ei
//   <decimalSI>       ::= n | u | m | "" | k | M | G | T | P | E
//   <decimalExponent> ::= (e | E) <sign>? <digits>       (an exponent that fits in 64 bits)
//
// A well-formed quantity is positive when it has no minus sign and a non-zero digit: the API
// server rounds any non-zero amount up to at least 1n, never down to zero, whatever the suffix.
// Text outside the grammar (empty, surrounding spaces, "1.5.5", "2GB", "1e") is not positive.
// Pure function of its argument; thread-safe.
#pragma once

#include <string_view>

namespace cgpu {

bool QuantityIsPositive(std::string_view quantity);

}  // namespace cgpu
