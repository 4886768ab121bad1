/* SPDX-License-Identifier: MIT */
/*
 * secret: a template program for recycled sandboxes (tests/test_recycle.c,
 * bench/recycle.c).  Does one request leave anything behind for the next?
 *
 * Set-up (before the ready point): notes where its memory lies: the first
 * break, and the top of the region mmap hands out from (a probe mapping).
 * Ready point: reads all of stdin (at most 4 KiB), one request:
 *
 *   put S       writes S into a small malloc'd buffer, a large (mmap'd) one,
 *               memory past the break (brk), an anonymous mmap, a stack array and a
 *               global; and changes what the syscall layer keeps for it: an
 *               open fd (/etc/motd at offset 7), the break (+64 KiB), the
 *               cwd (/tmp), SIGUSR1's handler, the blocked signals (SIGUSR2),
 *               and a failed open of a path holding S.  Prints "put ok".
 *   check S     prints one line: that state, and where S is found in the
 *               memory it can see (see `regions` below), or "not found"
 *   putcheck S  put, then check, in one run (the check's own control)
 *   compute N   N pages malloc'd, word i = i * 0x9e3779b97f4a7c15, summed:
 *               "compute N sum <16 hex digits>" (the 64-bit wrapping sum)
 *   dirty N     writes one word in each of N fresh mmap'd pages: "dirty N"
 *   crash       stores to address 0x10 (kernel memory): SIGSEGV
 *   spin        loops forever
 *   big N       writes N bytes of 'x' lines to stdout, then exits 0
 *   panic       unknown system calls until the guest kernel stops it (125)
 *
 * Anything else: "secret: bad request" on stderr, exit 2.  The output of
 * every request depends only on the request and the state the program
 * starts from, so a recycled sandbox must print what a fresh clone prints.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#define PAGE 4096UL
#define SYS_REGION_LO 0x201000UL /* the guest's user-mode syscall layer */
#define SYS_REGION_HI 0x400000UL
#define BRK_SPAN (1UL << 20)     /* scanned past the break */
#define MMAP_SPAN (2UL << 20)    /* scanned below the mmap top */
#define STACK_SPAN (256UL << 10) /* scanned below the stack pointer */

extern const char __executable_start[], end[];

static char req[4096];    /* the request; excluded from the search */
static char global[4096]; /* put's global copy */
static uintptr_t brk0, mmap_top;

static void bad(void)
{
	fputs("secret: bad request\n", stderr);
	exit(2);
}

/* Is needle[0..n) anywhere in [lo, hi), outside the request buffer? */
static int found_in(uintptr_t lo, uintptr_t hi, const char *needle, size_t n)
{
	uintptr_t rlo = (uintptr_t)req, rhi = rlo + sizeof(req);

	for (uintptr_t a = lo; a + n <= hi; a++) {
		const volatile char *p = (const volatile char *)a;
		size_t i = 0;

		if (a + n > rlo && a < rhi) {
			a = rhi - 1;
			continue;
		}
		while (i < n && p[i] == needle[i])
			i++;
		if (i == n)
			return 1;
	}
	return 0;
}

static __attribute__((noinline)) void put_stack(const char *s, size_t n)
{
	volatile char buf[8192];

	for (size_t i = 0; i < n; i++)
		buf[i] = s[i], buf[4096 + i] = s[i];
	__asm__ volatile("" ::"r"(buf) : "memory");
}

/* musl's sbrk() takes no increment (its malloc owns the break) */
static void *raw_sbrk(long inc)
{
	uintptr_t cur = (uintptr_t)syscall(SYS_brk, 0);

	if ((uintptr_t)syscall(SYS_brk, cur + inc) != cur + inc)
		return (void *)-1;
	return (void *)cur;
}

static void sigusr1(int sig)
{
	(void)sig;
}

static void put(const char *s, size_t n)
{
	char path[256];
	char *small = malloc(n + 1), *large = malloc(256 << 10);
	char *brk_mem = raw_sbrk(64 << 10); /* after malloc's own use of brk */
	char *map = mmap(NULL, 64 << 10, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct sigaction sa;
	sigset_t set;
	int fd;

	if (!small || !large || brk_mem == (void *)-1 || map == MAP_FAILED)
		exit(1);
	memcpy(small, s, n);
	small[n] = 0;
	memcpy(large, s, n);
	memcpy(large + (255 << 10), s, n);
	memcpy(brk_mem, s, n);
	memcpy(brk_mem + (63 << 10), s, n);
	memcpy(map, s, n);
	memcpy(global, s, n);
	put_stack(s, n);
	/* what the syscall layer keeps for the process */
	fd = open("/etc/motd", O_RDONLY);
	if (fd < 0 || lseek(fd, 7, SEEK_SET) != 7 || chdir("/tmp") < 0)
		exit(1);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = sigusr1;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR2);
	if (sigaction(SIGUSR1, &sa, NULL) < 0 || sigprocmask(SIG_BLOCK, &set, NULL) < 0)
		exit(1);
	snprintf(path, sizeof(path), "/tmp/%.*s", (int)n, s);
	if (open(path, O_RDONLY) >= 0) /* no such file: the path went through the kernel */
		exit(1);
	/* small, large and map stay allocated: the program exits */
}

static void check(const char *s, size_t n)
{
	struct { const char *name; uintptr_t lo, hi; } regions[5];
	uintptr_t sp = (uintptr_t)__builtin_frame_address(0), brk_now = (uintptr_t)syscall(SYS_brk, 0);
	struct sigaction old;
	sigset_t set;
	char cwd[256], where[128] = "";
	int nr = 0;

	printf("check fds=");
	for (int fd = 0, first = 1; fd < 64; fd++) {
		if (fcntl(fd, F_GETFD) < 0)
			continue;
		printf(first ? "%d" : ",%d", fd);
		if (fd > 2)
			printf("@%lld", (long long)lseek(fd, 0, SEEK_CUR));
		first = 0;
	}
	if (!getcwd(cwd, sizeof(cwd)))
		snprintf(cwd, sizeof(cwd), "?");
	if (sigaction(SIGUSR1, NULL, &old) < 0 || sigprocmask(SIG_BLOCK, NULL, &set) < 0)
		exit(1);
	printf(" brk=%+lld cwd=%s sigusr1=%s blocked=", (long long)(brk_now - brk0), cwd,
	       old.sa_handler == SIG_DFL ? "default" : "handler");
	for (int sig = 1, first = 1; sig < 65; sig++)
		if (sigismember(&set, sig) == 1)
			printf(first ? "%d" : ",%d", sig), first = 0;
	/* the memory it can see: its image (data, bss), its break and past
	 * it, the mmap region, its stack below sp, the syscall layer */
	regions[nr++] = (typeof(regions[0])){ "image", (uintptr_t)__executable_start, (uintptr_t)end };
	regions[nr++] = (typeof(regions[0])){ "brk", brk0, (brk_now > brk0 ? brk_now : brk0) + BRK_SPAN };
	regions[nr++] = (typeof(regions[0])){ "mmap", mmap_top - MMAP_SPAN, mmap_top };
	regions[nr++] = (typeof(regions[0])){ "stack", sp - STACK_SPAN > mmap_top ? sp - STACK_SPAN
										  : mmap_top, sp };
	regions[nr++] = (typeof(regions[0])){ "sys", SYS_REGION_LO, SYS_REGION_HI };
	for (int i = 0; i < nr; i++)
		if (found_in(regions[i].lo, regions[i].hi, s, n))
			snprintf(where + strlen(where), sizeof(where) - strlen(where), "%s%s",
				 where[0] ? "," : "", regions[i].name);
	printf(" secret=%s%s\n", where[0] ? "found:" : "not found", where);
}

static uint64_t compute(unsigned long pages)
{
	size_t words = pages * PAGE / 8;
	uint64_t *p = malloc(words * 8), sum = 0;

	if (!p)
		exit(1);
	for (size_t i = 0; i < words; i++)
		p[i] = (uint64_t)i * 0x9e3779b97f4a7c15ULL;
	for (size_t i = 0; i < words; i++)
		sum += ((volatile uint64_t *)p)[i];
	free(p);
	return sum;
}

static void dirty(unsigned long pages)
{
	volatile char *p = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		exit(1);
	for (unsigned long i = 0; i < pages; i++)
		p[i * PAGE] = 1;
}

static void big(unsigned long bytes)
{
	static char line[4096];

	memset(line, 'x', sizeof(line));
	line[sizeof(line) - 1] = '\n';
	while (bytes) {
		size_t k = bytes < sizeof(line) ? bytes : sizeof(line);
		if (fwrite(line, 1, k, stdout) != k)
			exit(1);
		bytes -= k;
	}
}

/* The argument after a command word: the rest of the line. */
static const char *arg(const char *rest, size_t *n)
{
	if (*rest != ' ' || !rest[1])
		bad();
	rest++;
	*n = strcspn(rest, "\n");
	if (!*n)
		bad();
	return rest;
}

static unsigned long number(const char *rest)
{
	size_t n;
	const char *a = arg(rest, &n);
	char *e;
	unsigned long v = strtoul(a, &e, 10);

	if (e == a || (*e && *e != '\n'))
		bad();
	return v;
}

int main(void)
{
	void *probe = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	size_t len = 0, n;
	const char *s;
	ssize_t r;

	brk0 = (uintptr_t)syscall(SYS_brk, 0);
	if (probe == MAP_FAILED)
		return 1;
	mmap_top = (uintptr_t)probe + PAGE;
	munmap(probe, PAGE);
	/* the ready point */
	while (len < sizeof(req) - 1 && (r = read(0, req + len, sizeof(req) - 1 - len)) > 0)
		len += (size_t)r;
	req[len] = 0;
	if (!strncmp(req, "putcheck", 8)) {
		s = arg(req + 8, &n);
		put(s, n);
		check(s, n);
	} else if (!strncmp(req, "put", 3)) {
		s = arg(req + 3, &n);
		put(s, n);
		puts("put ok");
	} else if (!strncmp(req, "check", 5)) {
		s = arg(req + 5, &n);
		check(s, n);
	} else if (!strncmp(req, "compute", 7)) {
		unsigned long pages = number(req + 7);
		printf("compute %lu sum %016" PRIx64 "\n", pages, compute(pages));
	} else if (!strncmp(req, "dirty", 5)) {
		unsigned long pages = number(req + 5);
		dirty(pages);
		printf("dirty %lu\n", pages);
	} else if (!strcmp(req, "crash") || !strcmp(req, "crash\n")) {
		volatile int *volatile p = (volatile int *)(uintptr_t)0x10; /* as segv.c */
		*p = 1;
		puts("crash: survived");
	} else if (!strcmp(req, "spin") || !strcmp(req, "spin\n")) {
		for (volatile unsigned long i = 0;; i++)
			;
	} else if (!strncmp(req, "big", 3)) {
		big(number(req + 3));
	} else if (!strcmp(req, "panic") || !strcmp(req, "panic\n")) {
		for (;;)
			syscall(999);
	} else {
		bad();
	}
	return 0;
}
