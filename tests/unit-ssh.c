/*
 * unit-ssh.c: the pieces of the ssh transport that need no host: the
 * ssh_config(5) reader (patterns, negation, first value wins, Include,
 * Match, tokens, ProxyJump), the bastion's [user@]HOST[:PORT] form, and
 * SHA-256 and base64 against their published vectors.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "inventory.h"
#include "ssh.h"
#include "tap.h"

static char	dir[] = "/tmp/unit-ssh.XXXXXX";

/* ok() evaluates its condition twice: no calls with effects in it. */

static char *
write_file(const char *name, const char *text)
{
	char	*path;
	FILE	*f;

	path = xasprintf("%s/%s", dir, name);
	if ((f = fopen(path, "w")) != NULL) {
		fputs(text, f);
		fclose(f);
	}
	return path;
}

static void
test_config(void)
{
	struct ssh_config	*c = NULL;
	struct ssh_host_config	 hc;
	struct err		 e;
	char			*inc, *main_, *text;
	int			 r;

	inc = write_file("inc.conf", "Host inc\n  Port 2200\n");
	text = xasprintf(
	    "# options before any Host apply to all\n"
	    "ConnectTimeout 7\n"
	    "Host web-* !web-9\n"
	    "  HostName %%h.example.com\n"
	    "  User deploy\n"
	    "  IdentityFile ~/.ssh/web_key\n"
	    "Host web-1\n"
	    "  User ignored-already-set\n"
	    "  Port=2222\n"
	    "  IdentityFile \"/keys/with space\"\n"
	    "Match host web-2\n"
	    "  Port 9999\n"
	    "Include %s\n"
	    "Host *\n"
	    "  User fallback\n"
	    "  UserKnownHostsFile /kh/%%h\n", inc);
	main_ = write_file("config", text);
	r = ssh_config_load(main_, 1, &c, &e);
	ok(r == 0, "a config loads");

	ssh_config_lookup(c, "web-1", &hc);
	is_str(hc.hostname, "web-1.example.com", "HostName with %%h");
	is_str(hc.user, "deploy", "the first User wins");
	ok(hc.port == 2222, "Port=2222, with '='");
	ok(hc.connect_timeout == 7, "options before any Host apply");
	ok(hc.nidentity == 2, "IdentityFile accumulates");
	if (hc.nidentity == 2) {
		ok(strcmp(hc.identity[0] + strlen(hc.identity[0]) - 13,
		    "/.ssh/web_key") == 0 && hc.identity[0][0] == '/',
		    "~ is expanded: %s", hc.identity[0]);
		is_str(hc.identity[1], "/keys/with space", "a quoted value");
	}
	is_str(hc.known_hosts, "/kh/web-1", "UserKnownHostsFile, %%h");
	ssh_host_config_free(&hc);

	ssh_config_lookup(c, "web-9", &hc);
	ok(hc.hostname == NULL, "a negated pattern excludes the host");
	is_str(hc.user, "fallback", "and Host * still applies");
	ssh_host_config_free(&hc);

	ssh_config_lookup(c, "web-2", &hc);
	ok(hc.port == 0, "a Match block never applies");
	ssh_host_config_free(&hc);

	ssh_config_lookup(c, "inc", &hc);
	ok(hc.port == 2200, "Include reads the other file");
	ssh_host_config_free(&hc);
	ssh_config_free(c);

	r = ssh_config_load("/nonexistent/config", 0, &c, &e);
	ok(r == 0, "a missing optional config is no error");
	ssh_config_free(c);
	r = ssh_config_load("/nonexistent/config", 1, &c, &e);
	ok(r == -1 && strstr(e.msg, "unable to read ssh config") != NULL,
	    "a missing -F config is: %s", e.msg);
	unlink(inc);
	unlink(main_);
	free(inc);
	free(main_);
	free(text);
}

/* The bastion's form, as proxy-jump and ProxyJump take it. */
static void
test_proxy_jump(void)
{
	static const struct {
		const char	*in;
		int		 r;
		const char	*user, *host;
		int		 port;
		size_t		 bad;	/* offset of the fault */
	} cases[] = {
		{ "gw", 0, NULL, "gw", 0, 0 },
		{ "jump@gw.example.net:2222", 0, "jump", "gw.example.net",
		    2222, 0 },
		{ "ssh://ops@127.0.0.5", 0, "ops", "127.0.0.5", 0, 0 },
		{ "a@b@gw", 0, "a@b", "gw", 0, 0 },
		{ "[::1]:22", 0, NULL, "::1", 22, 0 },
		{ "none", 1, NULL, NULL, 0, 0 },
		{ "gw1,gw2", -1, NULL, NULL, 0, 3 },
		{ "gw:0", -1, NULL, NULL, 0, 3 },
		{ "gw:65536", -1, NULL, NULL, 0, 3 },
		{ "gw:", -1, NULL, NULL, 0, 3 },
		{ "@gw", -1, NULL, NULL, 0, 0 },
		{ "", -1, NULL, NULL, 0, 0 },
		{ "g w", -1, NULL, NULL, 0, 1 },
		{ "[::1", -1, NULL, NULL, 0, 4 },
		{ "gw/x", -1, NULL, NULL, 0, 2 },
	};
	struct ssh_config	*c = NULL;
	struct ssh_host_config	 hc;
	struct proxy_jump	 pj;
	struct err		 e;
	const char		*why;
	char			*path;
	size_t			 i, bad;
	int			 r;

	for (i = 0; i < nitems(cases); i++) {
		r = proxy_jump_parse(cases[i].in, &pj, &bad, &why);
		ok(r == cases[i].r && (r != 0 ||
		    ((pj.user == NULL ? cases[i].user == NULL :
		    cases[i].user != NULL &&
		    strcmp(pj.user, cases[i].user) == 0) &&
		    strcmp(pj.host, cases[i].host) == 0 &&
		    pj.port == cases[i].port)) && (r >= 0 ||
		    bad == cases[i].bad), "proxy-jump '%s': %d%s%s at %zu",
		    cases[i].in, r, r < 0 ? ", " : "", r < 0 ? why : "", bad);
		proxy_jump_free(&pj);
	}

	path = write_file("jump.conf", "Host web-*\n  ProxyJump gw:2222\n"
	    "Host web-2\n  ProxyJump other\nHost lab\n  ProxyJump none\n");
	r = ssh_config_load(path, 1, &c, &e);
	ok(r == 0, "ProxyJump loads");
	ssh_config_lookup(c, "web-2", &hc);
	is_str(hc.proxy_jump, "gw:2222", "the first ProxyJump wins");
	ssh_host_config_free(&hc);
	ssh_config_lookup(c, "lab", &hc);
	is_str(hc.proxy_jump, "none", "ProxyJump none is kept, to say so");
	ssh_host_config_free(&hc);
	ssh_config_free(c);
	unlink(path);
	free(path);
	path = write_file("two.conf", "Host *\n  ProxyJump a,b\n");
	r = ssh_config_load(path, 1, &c, &e);
	ok(r == -1 && strstr(e.msg, "two.conf:2: invalid ProxyJump 'a,b': "
	    "only one jump host is supported") != NULL, "two hops: %s",
	    e.msg);
	ssh_config_free(c);
	unlink(path);
	free(path);
}

static void
test_sha256(void)
{
	char		 hex[65], *a;
	struct sha256	 s;
	unsigned char	 d[32];
	size_t		 i;

	sha256_hex("", 0, hex);
	is_str(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b"
	    "7852b855", "sha256 of nothing");
	sha256_hex("abc", 3, hex);
	is_str(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61"
	    "f20015ad", "sha256 of abc");
	a = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	sha256_hex(a, strlen(a), hex);
	is_str(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd4"
	    "19db06c1", "sha256 of the 448-bit vector");
	/* A million a's, fed in uneven pieces across block boundaries. */
	a = xmalloc(1000000);
	memset(a, 'a', 1000000);
	sha256_init(&s);
	for (i = 0; i < 1000000; i += 997)
		sha256_update(&s, a + i, i + 997 > 1000000 ? 1000000 - i : 997);
	sha256_final(&s, d);
	sha256_hex(a, 1000000, hex);
	is_str(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39cc"
	    "c7112cd0", "sha256 of a million a's");
	ok(d[0] == 0xcd && d[31] == 0xd0, "the same, in pieces");
	free(a);
}

static void
test_base64(void)
{
	struct buf	b;

	buf_init(&b);
	base64_encode(&b, (const unsigned char *)"foobar", 6, 1);
	is_str(b.data, "Zm9vYmFy", "base64 of foobar");
	buf_reset(&b);
	base64_encode(&b, (const unsigned char *)"fooba", 5, 1);
	is_str(b.data, "Zm9vYmE=", "base64 pads one");
	buf_reset(&b);
	base64_encode(&b, (const unsigned char *)"foob", 4, 1);
	is_str(b.data, "Zm9vYg==", "base64 pads two");
	buf_reset(&b);
	base64_encode(&b, (const unsigned char *)"foob", 4, 0);
	is_str(b.data, "Zm9vYg", "and not when fingerprints do not");
	buf_free(&b);
}

int
main(void)
{
	if (mkdtemp(dir) == NULL)
		return 99;
	setenv("HOME", dir, 1);
	test_config();
	test_proxy_jump();
	test_sha256();
	test_base64();
	rmdir(dir);
	return tap_done();
}
