/* exports-stub.c - the one source of the shared object that tests/exports.sh inspects. */
int mend_exports_stub_unused_(void);
