/*
 * sigproto.h - the one place that includes the Double Ratchet library, so the
 * rest of the core does not care whether it is libomemo-c (legacy OMEMO and
 * OMEMO:2) or libsignal-protocol-c (legacy only). Both install the same
 * header names, in different directories given by pkg-config's cflags.
 */
#ifndef MEND_CORE_SIGNAL_H
#define MEND_CORE_SIGNAL_H

#include <signal_protocol.h>
#include <key_helper.h>
#include <session_builder.h>
#include <session_cipher.h>
#include <session_pre_key.h>
#include <session_record.h>
#include <session_state.h>
#include <protocol.h>
#include <curve.h>

#endif
