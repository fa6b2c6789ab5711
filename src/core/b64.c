/* b64.c - placeholder until written. */
#include "config.h"
