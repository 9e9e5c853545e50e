// Layer probe: datasets/ knows nothing of the engine; building this must fail.
#include "datasets/mnist.h"
#include "nn/tensor.h"

int lethe_layer_probe_sideways() { return 0; }
