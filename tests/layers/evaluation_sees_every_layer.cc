// Layer probe, the control for the two above: evaluation/ sees repair/, influence/ and every
// layer below them, so this builds.
#include "datasets/mnist.h"
#include "evaluation/protocol.h"
#include "influence/quantities.h"
#include "learning/train.h"
#include "repair/identify.h"

int lethe_layer_probe_evaluation_sees() { return 0; }
