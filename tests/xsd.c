/* xsd.c - placeholder */
#include "xsd.h"
#include <stddef.h>
int mend_test_validate(const char *xsd_name, const char *xml, char **why) { (void)xsd_name; (void)xml; if (why) *why = NULL; return 1; }
