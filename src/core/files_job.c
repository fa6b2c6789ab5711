/*
 * files_job.c - transfers in a thread of their own, so that a host's window
 * never waits for a server: the work (an HTTP PUT or GET on libcurl, which
 * touches nothing of the account) runs in the thread; its progress and its
 * end reach the host on the host's own thread, from mend_account_tick() or
 * the next stanza handled, through the callbacks the core already has. A
 * host that frees the account cancels what still runs (the transfer stops at
 * its next progress call) and waits for it.
 */
#include "config.h"

#include <string.h>
#include "internal.h"
#include "files.h"

struct mend_file_job {
	GThread *thread;
	GAsyncQueue *finished; /* where the thread puts the job when its work returned */
	mend_file_work work;
	mend_file_finish finish;
	void *data;
	mend_transfer_opts o; /* the worker's: progress goes to job_progress */
	int (*host_progress)(uint64_t done, uint64_t total, void *data);
	void *host_progress_data;
	char *ca_file;
	gint cancel;
	GMutex mu; /* guards done, total, progressed */
	uint64_t done, total;
	int progressed;
	int result; /* written by the thread before it queues the job */
};

struct mend_file_jobs {
	GPtrArray *running;    /* started, not yet finished on the host's side */
	GAsyncQueue *finished; /* jobs whose work returned */
};

/* In the thread: keeps the progress for the host's thread; non-zero stops the transfer. */
static int job_progress(uint64_t done, uint64_t total, void *data)
{
	mend_file_job *j = data;

	g_mutex_lock(&j->mu);
	j->done = done;
	j->total = total;
	j->progressed = 1;
	g_mutex_unlock(&j->mu);
	return g_atomic_int_get(&j->cancel);
}

static gpointer thread_main(gpointer data)
{
	mend_file_job *j = data;

	j->result = j->work(j->data, &j->o);
	g_async_queue_push(j->finished, j); /* the queue's lock orders result before the pop */
	return NULL;
}

int mend_file_job_start(mend_account *acc, const mend_transfer_opts *o, mend_file_work work,
                        mend_file_finish finish, void *data)
{
	mend_file_jobs *js = acc->file_jobs;
	mend_file_job *j = g_new0(mend_file_job, 1);

	if (!js) {
		js = acc->file_jobs = g_new0(mend_file_jobs, 1);
		js->running = g_ptr_array_new();
		js->finished = g_async_queue_new();
	}
	if (o)
		j->o = *o;
	j->host_progress = j->o.progress;
	j->host_progress_data = j->o.progress_data;
	j->ca_file = g_strdup(j->o.ca_file); /* the caller's may not outlive the job */
	j->o.ca_file = j->ca_file;
	j->o.progress = job_progress;
	j->o.progress_data = j;
	j->work = work;
	j->finish = finish;
	j->data = data;
	j->finished = js->finished;
	g_mutex_init(&j->mu);
	g_ptr_array_add(js->running, j);
	j->thread = g_thread_new("mend-transfer", thread_main, j);
	return MEND_OK;
}

/* The host's progress callback, on its thread; its non-zero answer cancels. */
static void relay_progress(mend_file_job *j)
{
	uint64_t done, total;
	int news;

	g_mutex_lock(&j->mu);
	news = j->progressed;
	j->progressed = 0;
	done = j->done;
	total = j->total;
	g_mutex_unlock(&j->mu);
	if (news && j->host_progress && j->host_progress(done, total, j->host_progress_data))
		g_atomic_int_set(&j->cancel, 1);
}

static void job_free(mend_file_job *j)
{
	g_mutex_clear(&j->mu);
	g_free(j->ca_file);
	g_free(j);
}

/* A job whose work returned: its thread joined, its end told (acc NULL: only released). */
static void end_job(mend_account *acc, mend_file_jobs *js, mend_file_job *j)
{
	g_thread_join(j->thread);
	g_ptr_array_remove(js->running, j);
	j->finish(acc, j->result, j->data);
	job_free(j);
}

void mend_file_jobs_poll(mend_account *acc)
{
	mend_file_jobs *js = acc->file_jobs;
	mend_file_job *j;
	guint i;

	if (!js)
		return;
	for (i = 0; i < js->running->len; i++)
		relay_progress(g_ptr_array_index(js->running, i));
	while ((j = g_async_queue_try_pop(js->finished)))
		end_job(acc, js, j);
}

void mend_file_jobs_free(mend_account *acc)
{
	mend_file_jobs *js = acc->file_jobs;
	guint i;

	if (!js)
		return;
	for (i = 0; i < js->running->len; i++)
		g_atomic_int_set(&((mend_file_job *)g_ptr_array_index(js->running, i))->cancel, 1);
	while (js->running->len)
		end_job(NULL, js, g_async_queue_pop(js->finished));
	g_ptr_array_free(js->running, TRUE);
	g_async_queue_unref(js->finished);
	g_free(js);
	acc->file_jobs = NULL;
}
