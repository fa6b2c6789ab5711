/*
 * files.h - encrypted files in the libpurple plugin (files.c), for plugin.c:
 * received aesgcm:// links (XEP-0454) shown as "file NAME from HOST: /mend save N",
 * /mend save [N|URL], /mend sendfile PATH, /mend files ca [PATH].
 */
#ifndef MEND_PURPLE_FILES_H
#define MEND_PURPLE_FILES_H

#include <account.h>
#include "mend/mend.h"

/* A received message whose body is a file link: the line to show instead (g_free). */
char *mend_purple_file_received(const mend_event *ev);
/* Our sent file link, as shown in the chat (g_free). */
char *mend_purple_file_sent(const mend_event *ev);
/* Whether `sub` is a file command; if so it ran ("sendfile", "save", "files") with `arg`
 * (the rest of the line), answering through say(a, peer, text). */
int mend_purple_file_command(mend_account *acc, PurpleAccount *a, const char *peer, const char *sub,
                             const char *arg,
                             void (*say)(PurpleAccount *a, const char *jid, const char *text));
void mend_purple_files_free(void);

#endif
