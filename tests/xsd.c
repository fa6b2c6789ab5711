/*
 * xsd.c - validates XML text against a schema kept in xep/ (libxml2), for
 * the tests: what mend builds, and the fixtures of other clients, must match
 * the schema we wrote down for the protocol.
 *
 * The schema is looked up in $MEND_XEP_DIR (set by `make check`), else in
 * $top_srcdir/xep, else in ../xep. Errors from libxml2 (schema parsing,
 * document parsing, validation) are collected as text for *why; warnings
 * (such as "URI eu.siacs.conversations.axolotl is not absolute") are not.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/xmlerror.h>
#include <libxml/xmlschemas.h>

#include "xsd.h"

#if LIBXML_VERSION >= 21200
typedef const xmlError *xsd_error_ptr;
#else
typedef xmlErrorPtr xsd_error_ptr;
#endif

/* What libxml2 said, as one malloc'd string. */
struct xsd_log {
	char *text;
	size_t len;
};

static void log_append(struct xsd_log *log, const char *s)
{
	size_t n = strlen(s);
	char *p = realloc(log->text, log->len + n + 1);

	if (!p)
		return;
	memcpy(p + log->len, s, n + 1);
	log->text = p;
	log->len += n;
}

static void collect(void *user, xsd_error_ptr err)
{
	struct xsd_log *log = user;
	char line[64];

	if (!err || err->level < XML_ERR_ERROR)
		return;
	snprintf(line, sizeof(line), "line %d: ", err->line);
	log_append(log, line);
	log_append(log, err->message ? err->message : "(no message)\n");
}

static char *schema_path(const char *xsd_name)
{
	const char *dir = getenv("MEND_XEP_DIR");
	const char *top = getenv("top_srcdir");
	char *path;
	size_t n;

	n = strlen(xsd_name) + (dir ? strlen(dir) : top ? strlen(top) + 4 : 6) + 2;
	path = malloc(n);
	if (!path)
		return NULL;
	if (dir)
		snprintf(path, n, "%s/%s", dir, xsd_name);
	else if (top)
		snprintf(path, n, "%s/xep/%s", top, xsd_name);
	else
		snprintf(path, n, "../xep/%s", xsd_name);
	return path;
}

static xmlSchemaPtr load_schema(const char *xsd_name, struct xsd_log *log)
{
	xmlSchemaParserCtxtPtr pctx;
	xmlSchemaPtr schema = NULL;
	char *path = schema_path(xsd_name);

	if (!path)
		goto out;
	pctx = xmlSchemaNewParserCtxt(path);
	if (!pctx)
		goto free_path;
	xmlSchemaSetParserStructuredErrors(pctx, collect, log);
	schema = xmlSchemaParse(pctx);
	if (!schema) {
		log_append(log, "cannot load schema ");
		log_append(log, path);
		log_append(log, "\n");
	}
	xmlSchemaFreeParserCtxt(pctx);
free_path:
	free(path);
out:
	return schema;
}

static int validate_doc(xmlSchemaPtr schema, xmlDocPtr doc, struct xsd_log *log)
{
	xmlSchemaValidCtxtPtr vctx = xmlSchemaNewValidCtxt(schema);
	int rc;

	if (!vctx)
		return -1;
	xmlSchemaSetValidStructuredErrors(vctx, collect, log);
	rc = xmlSchemaValidateDoc(vctx, doc);
	xmlSchemaFreeValidCtxt(vctx);
	return rc;
}

int mend_test_validate(const char *xsd_name, const char *xml, char **why)
{
	struct xsd_log log = {NULL, 0};
	xmlSchemaPtr schema;
	xmlDocPtr doc;
	int rc = 1;

	/* Errors met while reading files and text, outside the contexts below. */
	xmlSetStructuredErrorFunc(&log, collect);
	schema = load_schema(xsd_name, &log);
	if (!schema)
		goto out;
	doc = xmlReadMemory(xml, (int)strlen(xml), "element.xml", NULL,
	                    XML_PARSE_NONET | XML_PARSE_NOWARNING);
	if (!doc) {
		log_append(&log, "not well-formed XML\n");
		goto free_schema;
	}
	rc = validate_doc(schema, doc, &log) == 0 ? 0 : 1;
	xmlFreeDoc(doc);
free_schema:
	xmlSchemaFree(schema);
out:
	xmlSetStructuredErrorFunc(NULL, NULL);
	if (rc && !log.text)
		log_append(&log, "invalid (libxml2 gave no reason)\n");
	if (why)
		*why = rc ? log.text : NULL;
	if (!why || !rc)
		free(log.text);
	return rc;
}
