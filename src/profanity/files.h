/*
 * files.h - encrypted files in the Profanity plugin (files.c), for module.c:
 * received aesgcm:// links (XEP-0454) shown with a short description and
 * saved by /mend save, /mend sendfile, and Profanity's own /sendfile kept
 * from uploading a file unencrypted in a chat mend encrypts.
 */
#ifndef MEND_PROFANITY_FILES_H
#define MEND_PROFANITY_FILES_H

#include "mend/mend.h"
#include "profanity/api.h"

/* Where command output goes (the window the command was typed in). */
typedef void (*mend_prof_reply)(const char *text);

/* A received message whose body is a file link: the line to show instead (g_free). With the
 * setting files.save-dir=DIR, a file received live is also saved in DIR (in a thread of its
 * own; a line in the same window says where, or why not). */
char *mend_prof_file_received(const struct mend_prof_api *api, mend_account *acc,
                              const mend_event *ev);
/* Our own file's link as it left (SENT): the line to show instead (g_free). */
char *mend_prof_file_sent(const mend_event *ev);
/* /mend sendfile PATH (to `chat`, else `room`: NULL unless mend encrypts it) and /mend save
 * [N|URL] (in a thread of its own; the line saying where comes in window `room`, else
 * `chat`, else the console). */
void mend_prof_file_command(const struct mend_prof_api *api, mend_account *acc, const char *sub,
                            const char *arg, const char *chat, const char *room,
                            mend_prof_reply reply);
/*
 * An IQ Profanity is about to send: its own upload slot request (XEP-0363) while the
 * current chat, room or private window is encrypted by mend (`chat`, else `room`, else
 * a private window: the line goes to the console) gets a stanza to send instead (malloc'd;
 * Profanity's upload then fails at once, nothing is uploaded) and a warning; else NULL.
 */
char *mend_prof_file_iq_send(const struct mend_prof_api *api, const char *text, const char *chat,
                             const char *room, int encrypted);
void mend_prof_files_free(void);

#endif
