#include "tap.h"
int main(void) { TAP_OK(0, "not written yet"); return tap_done(); }
