// Layer probe: repair/ (the two steps) must not see evaluation/ (the protocol and benchmark that
// run them); building this must fail with "evaluation/protocol.h: No such file or directory".
#include "repair/identify.h"
#include "evaluation/protocol.h"

int lethe_layer_probe_repair_evaluation() { return 0; }
