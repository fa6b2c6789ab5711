/* cli.h - placeholder until the mend client is written. */
#ifndef MEND_CLI_H
#define MEND_CLI_H
#endif
