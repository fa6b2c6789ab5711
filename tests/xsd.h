/*
 * xsd.h - validates XML text against a schema kept in xep/ (libxml2).
 */
#ifndef MEND_TESTS_XSD_H
#define MEND_TESTS_XSD_H

/*
 * Validates `xml` (one element, serialized) against `$MEND_XEP_DIR/<xsd_name>`.
 * Returns 0 when valid; otherwise non-zero and *why (malloc'd, free()) says
 * what libxml2 reported.
 */
int mend_test_validate(const char *xsd_name, const char *xml, char **why);

#endif
