/*
 * test-parser.c - the account's stanza parser (src/core/parser.c) gives the
 * tree xmpp_stanza_new_from_string() gives, for every fuzzing seed and for
 * hand-made cases around each rule of its fast path (inside the subset,
 * just outside it, not well-formed); the common stanzas take the fast path;
 * the pool's context frees cleanly.
 */
#include "config.h"

#include <glib.h>
#include <strophe.h>

#include "parser.h"
#include "tap.h"

static xmpp_ctx_t *lib_ctx;

/* Parses `text` both ways; checks that the trees agree and that it took the fast path
 * when `fast` is 1 (expat when 0, either when -1). */
static void check(mend_parser *p, xmpp_ctx_t *ctx, const char *label, const char *text, int fast)
{
	xmpp_stanza_t *want = xmpp_stanza_new_from_string(lib_ctx, text);
	xmpp_stanza_t *got = mend_parser_parse(p, ctx, text);
	GString *why = g_string_new(NULL);
	int ok;

	if (!want || !got)
		ok = !want && !got;
	else
		ok = mend_parser_same_tree(got, want, why);
	TAP_OK(ok, "%s: the tree is libstrophe's (%s)", label,
	       want ? "an element" : "not well-formed");
	if (!ok)
		printf("#   %s\n#   input: %s\n#   ours %s, libstrophe's %s\n", why->str, text,
		       got ? "an element" : "NULL", want ? "an element" : "NULL");
	if (fast >= 0)
		TAP_EQ(mend_parser_was_fast(p), fast, "%s: %s", label,
		       fast ? "took the fast path" : "left to expat");
	g_string_free(why, TRUE);
	if (want)
		xmpp_stanza_release(want);
	if (got)
		xmpp_stanza_release(got);
}

static const struct {
	const char *label, *xml;
	int fast;
} cases[] = {
    /* inside the subset */
    {"a message", "<message xmlns='jabber:client' to='a@x' type=\"chat\"><body>hi</body></message>",
     1},
    {"white space around", " \n\t<a/> \n", 1},
    {"an empty root", "<a b='1'/>", 1},
    {"space before />", "<a b='1' />", 1},
    {"space around =", "<a b = '1'\n c\t=\"2\"/>", 1},
    {"space in an end tag", "<a><b></b ></a  >", 1},
    {"entities in text", "<a>&lt;x&gt; &amp; &quot;&apos; ]] ]></a>", 1},
    {"entities in a value", "<a b='&lt;&amp;&gt;&quot;&apos;' c=\"'\" d='\"' e='>'/>", 1},
    {"mixed text", "<a>one<b>two</b>three<c/>four</a>", 1},
    {"the namespace inherited", "<a xmlns='n1'><b><c xmlns='n2'><d/></c></b><e/></a>", 1},
    {"xmlns='' undeclares", "<a xmlns='n1'><b xmlns=''><c/></b></a>", 1},
    {"xml:lang", "<message xml:lang='en'><body xml:lang='de'>x</body></message>", 1},
    {"names with digits, dots, dashes, underscores", "<a-1.b_c d-2.e_f='1'/>", 1},
    {"newline and tab in text", "<a>\tline\nline</a>", 1},
    {"a text node only at depth 2", "<a>x</a>", 1},
    {"the namespace from an entity", "<a xmlns='u&amp;v'/>", 1},
    {"a namespace with an entity inherited", "<a xmlns='u&amp;v'><b><c/></b>x</a>", 1},
    {"the parent's namespace again after a child's",
     "<a xmlns='n1'><b xmlns='n2'>x</b><c/><d xmlns=''><e/></d><f/></a>", 1},
    {"entities beside the other quote in values", "<a b=\"x&amp;'y&lt;\" c='\"&quot;z' d='&gt;'/>",
     1},
    {"entities and ] in text around children", "<a>&lt;x<b>&amp;</b>]y&gt;&gt;<c/>]</a>", 1},
    {"an entity alone as text", "<a><b>&amp;</b></a>", 1},
    {"ten attributes", "<a a0='0' a1='1' a2='2' a3='3' a4='4' a5='5' a6='6' a7='7' a8='8' a9='9'/>",
     1},
    /* outside the subset: expat decides */
    {"a character reference", "<a>&#65;&#x42;</a>", 0},
    {"an attribute character reference", "<a b='&#65;'/>", 0},
    {"CR in text", "<a>x\r\ny</a>", 0},
    {"a tab in a value", "<a b='x\ty'/>", 0},
    {"a newline in a value", "<a b='x\ny'/>", 0},
    {"non-ASCII text", "<a>caf\xc3\xa9</a>", 0},
    {"non-ASCII value", "<a b='\xc3\xa9'/>", 0},
    {"a comment", "<a><!-- c --></a>", 0},
    {"CDATA", "<a><![CDATA[<x>]]></a>", 0},
    {"a processing instruction", "<a><?pi x?></a>", 0},
    {"an XML declaration", "<?xml version='1.0'?><a/>", 0},
    {"a prefixed element", "<p:a xmlns:p='n'/>", 0},
    {"a prefixed attribute", "<a xmlns:p='n' p:b='1'/>", 0},
    {"lang and xml:lang", "<a lang='x' xml:lang='y'/>", 0},
    {"xml:xmlns under a namespace", "<a xmlns='n'><b xml:xmlns='x'/></a>", 0},
    {"xml:xmlns at the top", "<a xml:xmlns='x'/>", 0},
    {"two roots", "<a/><b/>", 0},
    {"text after the root", "<a/>x", 0},
    {"text before the root", "x<a/>", 0},
    {"two xmlns", "<a xmlns='1' xmlns='2'/>", 0},
    /* not well-formed: expat says so, and both give NULL */
    {"empty", "", 0},
    {"white space only", "  ", 0},
    {"unclosed", "<a><b></b>", 0},
    {"a wrong end tag", "<a><b></a></b>", 0},
    {"a duplicate attribute", "<a b='1' b='2'/>", 0},
    {"a duplicate attribute after others", "<a b='1' c='2' d='3' b='4'/>", 0},
    {"xml:lang twice", "<a xml:lang='x' xml:lang='y'/>", 0},
    /* the text ends inside: every place where a name, value or text could run off it */
    {"ends after <", "<", 0},
    {"ends in a name", "<ab", 0},
    {"ends after a name", "<a ", 0},
    {"ends in an attribute name", "<a bc", 0},
    {"ends after =", "<a b=", 0},
    {"ends in a value", "<a b='1", 0},
    {"ends after a value", "<a b='1'", 0},
    {"ends after /", "<a/", 0},
    {"ends in text", "<a>text", 0},
    {"ends in an entity", "<a>&am", 0},
    {"ends after ]", "<a>]", 0},
    {"ends after ]]", "<a>]]", 0},
    {"ends in an end tag's name", "<a></a", 0},
    {"ends in a child", "<a><b", 0},
    {"no space between attributes", "<a b='1'c='2'/>", 0},
    {"]]> in text", "<a>x]]>y</a>", 0},
    {"]]]> in text", "<a>]]]></a>", 0},
    {"an unknown entity", "<a>&foo;</a>", 0},
    {"& alone", "<a>a & b</a>", 0},
    {"&amp without ;", "<a>&amp</a>", 0},
    {"< in a value", "<a b='<'/>", 0},
    {"no quotes", "<a b=1/>", 0},
    {"unclosed value", "<a b='1/>", 0},
    {"space after <", "< a/>", 0},
    {"space after </", "<a></ a>", 0},
    {"a name starting with a digit", "<1a/>", 0},
    {"/ >", "<a/ >", 0},
    {"closing the stream", "<a/></stream><b>", 0},
    {"an end tag first", "</a>", 0},
    {"an undeclared prefix", "<p:a/>", 0},
};

/* Every file of a seed folder of tests/fuzz/corpus. */
static void check_seeds(mend_parser *p, xmpp_ctx_t *ctx, const char *dir)
{
	GDir *d = g_dir_open(dir, 0, NULL);
	const char *name;
	unsigned n = 0, fast = 0;

	if (!d) {
		TAP_OK(0, "seed folder %s opens", dir);
		return;
	}
	while ((name = g_dir_read_name(d))) {
		char *path = g_build_filename(dir, name, NULL), *text = NULL, *label;

		if (g_file_get_contents(path, &text, NULL, NULL)) {
			label = g_strdup_printf("seed %s", path);
			check(p, ctx, label, text, -1);
			fast += mend_parser_was_fast(p);
			n++;
			g_free(label);
		}
		g_free(text);
		g_free(path);
	}
	g_dir_close(d);
	printf("# %s: %u seeds, %u on the fast path\n", dir, n, fast);
}

int main(void)
{
	static const char *const seeds[] = {"stanza", "legacy", "omemo2", "sce"};
	const char *top = g_getenv("top_srcdir");
	mend_parser *p = mend_parser_new();
	xmpp_ctx_t *ctx = xmpp_ctx_new(mend_parser_mem(p), NULL);
	GString *deep = g_string_new(NULL);
	size_t i;

	lib_ctx = xmpp_ctx_new(NULL, NULL);
	if (!ctx || !lib_ctx)
		TAP_BAIL("no libstrophe context");
	for (i = 0; i < G_N_ELEMENTS(cases); i++)
		check(p, ctx, cases[i].label, cases[i].xml, cases[i].fast);
	for (i = 0; i < 2000; i++)
		g_string_append(deep, "<d>");
	for (i = 0; i < 2000; i++)
		g_string_append(deep, "</d>");
	check(p, ctx, "2000 levels deep", deep->str, 1);
	g_string_truncate(deep, deep->len - 4); /* one end tag short */
	check(p, ctx, "2000 levels, one not closed", deep->str, 0);
	/* runs longer than the buffers kept between parses: a text, then a value */
	g_string_assign(deep, "<a><b>");
	for (i = 0; i < 20000; i++)
		g_string_append(deep, "QUJD+/9=");
	g_string_append(deep, "</b>x</a>");
	check(p, ctx, "a text of 160,000 bytes", deep->str, 1);
	g_string_assign(deep, "<a b='");
	for (i = 0; i < 20000; i++)
		g_string_append(deep, "QUJD+/9=");
	g_string_append(deep, "' c='1'/>");
	check(p, ctx, "a value of 160,000 bytes", deep->str, 1);
	check(p, ctx, "a short one after them", "<a b='1'>x</a>", 1);
	for (i = 0; i < G_N_ELEMENTS(seeds); i++) {
		char *dir =
		    g_build_filename(top ? top : ".", "tests", "fuzz", "corpus", seeds[i], NULL);

		check_seeds(p, ctx, dir);
		g_free(dir);
	}
	/* a tree kept after the parser moved on is whole: the pool does not reuse its blocks */
	{
		xmpp_stanza_t *kept = mend_parser_parse(p, ctx, "<k a='1'><b>text</b></k>"), *again;

		again = mend_parser_parse(p, ctx, "<z y='2'><w>other</w></z>");
		TAP_OK(kept && again && g_strcmp0(xmpp_stanza_get_attribute(kept, "a"), "1") == 0 &&
		           g_strcmp0(xmpp_stanza_get_text_ptr(
		                         xmpp_stanza_get_children(xmpp_stanza_get_children(kept))),
		                     "text") == 0,
		       "a tree kept across a later parse is unchanged");
		if (kept)
			xmpp_stanza_release(kept);
		if (again)
			xmpp_stanza_release(again);
	}
	g_string_free(deep, TRUE);
	xmpp_ctx_free(ctx);
	xmpp_ctx_free(lib_ctx);
	mend_parser_free(p);
	return tap_done();
}
