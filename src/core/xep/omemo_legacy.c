/* omemo_legacy.c - placeholder until written. */
#include "config.h"
