/* cdl_sec: see cdl_sec.h. Keys are ECDSA P-256 (fast to make, small
 * handshakes); certificates are X.509 v3 signed with SHA-256 by the
 * cluster CA, made with OpenSSL. */
#include "cdl_sec.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cdl_log.h"
#include "cdl_util.h"

/* Largest PEM file we load: a certificate or key is a few KiB. */
#define PEM_MAX (256 * 1024)

static const char *const role_names[CDL_ROLE_N] = {
    [CDL_ROLE_NONE] = "none",
    [CDL_ROLE_NAMENODE] = "namenode",
    [CDL_ROLE_DATANODE] = "datanode",
    [CDL_ROLE_JOBTRACKER] = "jobtracker",
    [CDL_ROLE_TASKTRACKER] = "tasktracker",
    [CDL_ROLE_MOUNT] = "mount",
    [CDL_ROLE_ADMIN] = "admin",
    [CDL_ROLE_USER] = "user",
    [CDL_ROLE_INSECURE] = "insecure",
};

enum cdl_role cdl_role_parse(const char *s)
{
	for (int r = CDL_ROLE_NAMENODE; r < CDL_ROLE_INSECURE; r++)
		if (s && !strcmp(s, role_names[r]))
			return (enum cdl_role)r;
	return CDL_ROLE_NONE;
}

const char *cdl_role_name(enum cdl_role r)
{
	return (unsigned)r < CDL_ROLE_N ? role_names[r] : "none";
}

bool cdl_peer_from_cn(const char *cn, size_t len, cdl_peer *p)
{
	const char *colon = memchr(cn, ':', len);
	if (!colon)
		return false;
	size_t rl = (size_t)(colon - cn), nl = len - rl - 1;
	char role[32];
	if (rl == 0 || rl >= sizeof(role) || nl == 0 || nl >= sizeof(p->name))
		return false;
	memcpy(role, cn, rl);
	role[rl] = '\0';
	enum cdl_role r = cdl_role_parse(role);
	if (r == CDL_ROLE_NONE)
		return false;
	for (size_t i = 0; i < nl; i++) {
		unsigned char ch = (unsigned char)colon[1 + i];
		if (ch < 0x21 || ch == 0x7f)
			return false;
	}
	p->role = r;
	memcpy(p->name, colon + 1, nl);
	p->name[nl] = '\0';
	return true;
}

/* ---------------------------------------------------------------- identity */

static struct {
	bool enabled;
	char *ca, *cert, *key;
} ident;

static int read_pem(const char *path, char **out)
{
	*out = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		cdl_err("cannot open '%s': %s", path, strerror(e));
		return -e;
	}
	struct stat st;
	int rc = 0;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 || st.st_size > PEM_MAX) {
		cdl_err("'%s' is not a PEM file of a sensible size", path);
		rc = -EINVAL;
		goto close_fd;
	}
	char *buf = xmalloc((size_t)st.st_size + 1);
	if ((rc = cdl_read_full(fd, buf, (size_t)st.st_size)) < 0) {
		cdl_err("cannot read '%s': %s", path, strerror(-rc));
		free(buf);
		goto close_fd;
	}
	buf[st.st_size] = '\0';
	if (!strstr(buf, "-----BEGIN ")) {
		cdl_err("'%s' holds no PEM block", path);
		free(buf);
		rc = -EINVAL;
		goto close_fd;
	}
	*out = buf;
close_fd:
	close(fd);
	return rc;
}

int cdl_sec_use(const char *ca_file, const char *cert_file, const char *key_file)
{
	char *ca = NULL, *cert = NULL, *key = NULL;
	int rc;
	if ((rc = read_pem(ca_file, &ca)) < 0 || (rc = read_pem(cert_file, &cert)) < 0 ||
	    (rc = read_pem(key_file, &key)) < 0) {
		free(ca);
		free(cert);
		free(key);
		return rc;
	}
	free(ident.ca);
	free(ident.cert);
	if (ident.key)
		OPENSSL_cleanse(ident.key, strlen(ident.key));
	free(ident.key);
	ident.ca = ca;
	ident.cert = cert;
	ident.key = key;
	ident.enabled = true;
	return 0;
}

void cdl_sec_use_insecure(void)
{
	ident.enabled = false;
	cdl_warn("insecure = yes: plaintext RPC, every caller's claimed identity is believed");
}

bool cdl_sec_enabled(void)
{
	return ident.enabled;
}

const char *cdl_sec_ca_pem(void)
{
	return ident.enabled ? ident.ca : NULL;
}

const char *cdl_sec_cert_pem(void)
{
	return ident.enabled ? ident.cert : NULL;
}

const char *cdl_sec_key_pem(void)
{
	return ident.enabled ? ident.key : NULL;
}

int cdl_sec_daemon_init(const char *ca, const char *cert, const char *key, bool insecure)
{
	if (insecure) {
		cdl_sec_use_insecure();
		return 0;
	}
	if (!ca || !*ca || !cert || !*cert || !key || !*key) {
		cdl_err("no certificate: set tls_ca, tls_cert and tls_key (see 'caudal cert'), "
			"or insecure = yes");
		return -EINVAL;
	}
	return cdl_sec_use(ca, cert, key);
}

static bool readable(const char *p)
{
	return access(p, R_OK) == 0;
}

/* Tries the certificate pair dir/base.crt + dir/base.key with ca. */
static bool try_pair(const char *ca, const char *dir, const char *base)
{
	char *crt = xasprintf("%s/%s.crt", dir, base);
	char *key = xasprintf("%s/%s.key", dir, base);
	bool ok = readable(ca) && readable(crt) && readable(key) && cdl_sec_use(ca, crt, key) == 0;
	free(crt);
	free(key);
	return ok;
}

int cdl_sec_client_init(const char *home, const char *as_name, char *err, size_t errlen)
{
	const char *e_ca = getenv("CAUDAL_CA"), *e_crt = getenv("CAUDAL_CERT"),
		   *e_key = getenv("CAUDAL_KEY"), *e_ins = getenv("CAUDAL_INSECURE");
	if (e_ins && !strcmp(e_ins, "1")) {
		ident.enabled = false;
		return 0;
	}
	if (home && *home) {
		/* a cluster `caudal up --insecure=yes` started speaks plaintext */
		char *marker = xasprintf("%s/insecure", home);
		bool plain = access(marker, F_OK) == 0;
		free(marker);
		if (plain) {
			ident.enabled = false;
			return 0;
		}
	}
	if (e_crt && *e_crt) {
		if (!e_ca || !e_key || cdl_sec_use(e_ca, e_crt, e_key) < 0) {
			snprintf(
			    err, errlen,
			    "cannot use CAUDAL_CERT '%s' (CAUDAL_CA and CAUDAL_KEY needed too)",
			    e_crt);
			return -ENOENT;
		}
		return 0;
	}
	char name[128] = "";
	struct passwd pw, *pp = NULL;
	char pwbuf[4096];
	if (getpwuid_r(geteuid(), &pw, pwbuf, sizeof(pwbuf), &pp) == 0 && pp)
		snprintf(name, sizeof(name), "%s", pp->pw_name);
	bool found = false;
	if (home && *home) {
		char *certs = xasprintf("%s/certs", home);
		char *ca = xasprintf("%s/ca.crt", certs);
		char *users = xasprintf("%s/users", certs);
		if (as_name && *as_name)
			found = try_pair(ca, certs, as_name); /* a daemon's own, e.g. "mount" */
		else if (geteuid() == 0)
			found = try_pair(ca, certs, "admin");
		if (!found && !(as_name && *as_name) && *name)
			found = try_pair(ca, users, name);
		free(users);
		free(ca);
		free(certs);
	}
	if (!found && *name) {
		const char *h = getenv("HOME");
		if (h && *h) {
			char *dir = xasprintf("%s/.caudal", h);
			char *ca = xasprintf("%s/ca.crt", dir);
			found = try_pair(ca, dir, name);
			free(ca);
			free(dir);
		}
	}
	if (!found) {
		snprintf(err, errlen,
			 "no certificate for '%s': ask an admin for one ('caudal cert "
			 "create-client %s') and put it in ~/.caudal, or set CAUDAL_CERT",
			 *name ? name : "this user", *name ? name : "NAME");
		return -ENOENT;
	}
	return 0;
}

/* ---------------------------------------------------------------- making */

static int write_pem_file(const char *path, mode_t mode, bool is_key, EVP_PKEY *key, X509 *crt)
{
	char *tmp = xasprintf("%s.tmp.%d", path, (int)getpid());
	int rc = 0;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0) {
		rc = -errno;
		cdl_err("cannot create '%s': %s", tmp, strerror(-rc));
		goto free_tmp;
	}
	fchmod(fd, mode);
	FILE *f = fdopen(fd, "w");
	if (!f) {
		rc = -errno;
		close(fd);
		goto unlink_tmp;
	}
	int ok = is_key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL)
			: PEM_write_X509(f, crt);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0)
		ok = 0;
	if (fclose(f) != 0)
		ok = 0;
	if (!ok) {
		rc = -EIO;
		cdl_err("cannot write '%s'", tmp);
		goto unlink_tmp;
	}
	if (rename(tmp, path) < 0) {
		rc = -errno;
		cdl_err("cannot rename '%s' to '%s': %s", tmp, path, strerror(-rc));
		goto unlink_tmp;
	}
	goto free_tmp;
unlink_tmp:
	unlink(tmp);
free_tmp:
	free(tmp);
	return rc;
}

static int add_ext(X509 *crt, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer, crt, NULL, NULL, 0);
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return -EINVAL;
	int ok = X509_add_ext(crt, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -EINVAL;
}

/* A certificate for key, subject CN=cn, signed by (issuer, ikey), or
 * self-signed when issuer is NULL. */
static X509 *make_cert(EVP_PKEY *key, const char *cn, const char *org, X509 *issuer, EVP_PKEY *ikey,
		       bool is_ca, const char *san, int days)
{
	X509 *x = X509_new();
	BIGNUM *serial = BN_new();
	if (!x || !serial)
		goto fail;
	X509_set_version(x, 2);
	if (!BN_rand(serial, 120, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) ||
	    !BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(x)))
		goto fail;
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400);
	X509_set_pubkey(x, key);
	X509_NAME *nm = X509_get_subject_name(x);
	if (!X509_NAME_add_entry_by_txt(nm, "O", MBSTRING_UTF8, (const unsigned char *)org, -1, -1,
					0) ||
	    !X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
					0))
		goto fail;
	X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : nm);
	X509 *iss = issuer ? issuer : x;
	if (is_ca) {
		if (add_ext(x, iss, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") < 0 ||
		    add_ext(x, iss, NID_key_usage, "critical,keyCertSign,cRLSign") < 0)
			goto fail;
	} else {
		if (add_ext(x, iss, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
		    add_ext(x, iss, NID_key_usage, "critical,digitalSignature,keyAgreement") < 0 ||
		    add_ext(x, iss, NID_ext_key_usage, "serverAuth,clientAuth") < 0)
			goto fail;
		if (san && add_ext(x, iss, NID_subject_alt_name, san) < 0)
			goto fail;
	}
	if (add_ext(x, iss, NID_subject_key_identifier, "hash") < 0)
		goto fail;
	if (issuer && add_ext(x, iss, NID_authority_key_identifier, "keyid:always") < 0)
		goto fail;
	if (!X509_sign(x, ikey ? ikey : key, EVP_sha256()))
		goto fail;
	BN_free(serial);
	return x;
fail:
	BN_free(serial);
	X509_free(x);
	return NULL;
}

int cdl_cert_create_ca(const char *dir, const char *cluster_name)
{
	char *crt = xasprintf("%s/ca.crt", dir), *keyp = xasprintf("%s/ca.key", dir);
	int rc = 0;
	EVP_PKEY *key = NULL;
	X509 *x = NULL;
	if (access(crt, F_OK) == 0 && access(keyp, F_OK) == 0)
		goto free_paths; /* already made */
	if ((rc = cdl_mkdirs(dir)) < 0) {
		cdl_err("cannot make '%s': %s", dir, strerror(-rc));
		goto free_paths;
	}
	chmod(dir, 0755);
	key = EVP_EC_gen("P-256");
	char *cn = xasprintf("caudal-ca:%.40s", cluster_name ? cluster_name : "cluster");
	x = key ? make_cert(key, cn, "caudal", NULL, NULL, true, NULL, 3650) : NULL;
	free(cn);
	if (!x) {
		cdl_err("cannot make the cluster CA");
		rc = -EIO;
		goto free_all;
	}
	if ((rc = write_pem_file(keyp, 0600, true, key, NULL)) < 0 ||
	    (rc = write_pem_file(crt, 0644, false, NULL, x)) < 0)
		goto free_all;
free_all:
	X509_free(x);
	EVP_PKEY_free(key);
free_paths:
	free(crt);
	free(keyp);
	return rc;
}

static int load_ca(const char *dir, X509 **crt, EVP_PKEY **key)
{
	char *cp = xasprintf("%s/ca.crt", dir), *kp = xasprintf("%s/ca.key", dir);
	int rc = 0;
	FILE *f = fopen(cp, "re");
	*crt = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
	if (f)
		fclose(f);
	f = fopen(kp, "re");
	*key = f ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
	if (f)
		fclose(f);
	if (!*crt || !*key) {
		cdl_err("cannot load the CA from '%s' (ca.crt, ca.key)", dir);
		X509_free(*crt);
		EVP_PKEY_free(*key);
		*crt = NULL;
		*key = NULL;
		rc = -ENOENT;
	}
	free(cp);
	free(kp);
	return rc;
}

/* "IP:1.2.3.4" or "DNS:name" (and DNS:localhost for loopback addresses). */
static char *san_of(const char *host)
{
	unsigned char buf[16];
	if (inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1)
		return strncmp(host, "127.", 4) == 0 ? xasprintf("IP:%s,DNS:localhost", host)
						     : xasprintf("IP:%s", host);
	return xasprintf("DNS:%s", host);
}

int cdl_cert_create(const char *dir, enum cdl_role role, const char *name, const char *host,
		    const char *crt_path, const char *key_path, int days)
{
	if (role <= CDL_ROLE_NONE || role >= CDL_ROLE_INSECURE || !name || !*name ||
	    strlen(name) >= 100 || strchr(name, ':'))
		return -EINVAL;
	for (const char *p = name; *p; p++)
		if ((unsigned char)*p < 0x21 || *p == 0x7f || *p == '/')
			return -EINVAL;
	X509 *ca = NULL, *x = NULL;
	EVP_PKEY *cakey = NULL, *key = NULL;
	int rc = load_ca(dir, &ca, &cakey);
	if (rc < 0)
		return rc;
	char *cn = xasprintf("%s:%s", cdl_role_name(role), name);
	char *san = host && *host ? san_of(host) : NULL;
	key = EVP_EC_gen("P-256");
	x = key ? make_cert(key, cn, "caudal", ca, cakey, false, san, days) : NULL;
	if (!x) {
		cdl_err("cannot make a certificate for '%s'", cn);
		rc = -EIO;
		goto free_all;
	}
	if ((rc = write_pem_file(key_path, 0600, true, key, NULL)) < 0 ||
	    (rc = write_pem_file(crt_path, 0644, false, NULL, x)) < 0)
		goto free_all;
free_all:
	free(cn);
	free(san);
	X509_free(x);
	X509_free(ca);
	EVP_PKEY_free(key);
	EVP_PKEY_free(cakey);
	return rc;
}

static void list_dir(const char *dir, const char *prefix, FILE *out)
{
	DIR *d = opendir(dir);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		size_t n = strlen(e->d_name);
		if (n < 5 || strcmp(e->d_name + n - 4, ".crt"))
			continue;
		char *p = xasprintf("%s/%s", dir, e->d_name);
		FILE *f = fopen(p, "re");
		X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
		if (f)
			fclose(f);
		if (x) {
			char cn[256] = "?";
			X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn,
						  sizeof(cn));
			BIO *b = BIO_new(BIO_s_mem());
			ASN1_TIME_print(b, X509_get0_notAfter(x));
			char exp[64] = "";
			int k = BIO_read(b, exp, sizeof(exp) - 1);
			exp[k > 0 ? k : 0] = '\0';
			BIO_free(b);
			char *rel = xasprintf("%s%s%s", prefix, *prefix ? "/" : "", e->d_name);
			fprintf(out, "%-28s %-36s expires %s\n", rel, cn, exp);
			free(rel);
			X509_free(x);
		}
		free(p);
	}
	closedir(d);
}

int cdl_cert_list(const char *dir, FILE *out)
{
	char *ca = xasprintf("%s/ca.crt", dir);
	bool have = access(ca, R_OK) == 0;
	free(ca);
	if (!have)
		return -ENOENT;
	list_dir(dir, "", out);
	char *users = xasprintf("%s/users", dir);
	list_dir(users, "users", out);
	free(users);
	return 0;
}
