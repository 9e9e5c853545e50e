// Layer probe, the control for repair_includes_kernels: repair/ sees the kernels' shared types
// (what it hands to nn/) and every layer below it, so this builds.
#include "datasets/mnist.h"
#include "kernels/types.h"
#include "learning/train.h"
#include "nn/per_example_kernels.h"
#include "repair/identify.h"

int lethe_layer_probe_repair_types() { return sizeof(lethe::PerExampleRequest) > 0 ? 0 : 1; }
