/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/proc/proc.h"
#include "backend/proc/proc_abi.h"

int proc__create(struct proc_sandbox *sb, uint64_t mem_size, const char *program,
		 struct sb_err *err)
{
	memset(sb, 0, sizeof(*sb));
	sb->chan = -1;
	sb->ram.fd = -1;
	hypercall__init(&sb->hc, &sb->ram, &sb->timeout, program);
	sb->hc.vcpu_fd = -1; /* SET_FS is not a proc hypercall: arch_prctl */
	return ram__create(&sb->ram, RAM_MEMFD, mem_size, err);
}

/* The child: only the channel and RAM at their agreed numbers, no core
 * dumps, dies with us; then the stub. */
static __attribute__((noreturn)) void proc__child(int chan, int ram_fd, const char *stub,
						  pid_t parent)
{
	static char *const argv[] = { "snapbox-sandbox", NULL };
	static char *const envp[] = { NULL };
	struct rlimit no_core = { 0, 0 };
	sigset_t none;

	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
		_exit(126);
	setrlimit(RLIMIT_CORE, &no_core);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	if (dup2(chan, SB_PROC_CHAN_FD) < 0 || dup2(ram_fd, SB_PROC_RAM_FD) < 0)
		_exit(126);
	syscall(SYS_close_range, 0, SB_PROC_CHAN_FD - 1, 0);
	syscall(SYS_close_range, SB_PROC_CHAN_FD + 1, SB_PROC_RAM_FD - 1, 0);
	syscall(SYS_close_range, SB_PROC_RAM_FD + 1, ~0U, 0);
	execve(stub, argv, envp);
	_exit(126);
}

int proc__boot(struct proc_sandbox *sb, const struct boot_params *bp, const char *stub_path,
	       struct sb_err *err)
{
	struct sb_proc_start st;
	struct sb_boot_info *bi;
	uint64_t entry;
	pid_t parent = getpid();
	int sv[2], ret;

	ret = boot__setup(&sb->ram, bp, &entry, err);
	if (ret < 0)
		return ret;
	/* the same boot info, told it is a process: no MMIO, no page tables,
	 * no privileged instruction, hypercalls on the channel */
	bi = ram__gpa_to_host(&sb->ram, SB_BOOTINFO_GPA, sizeof(*bi));
	bi->flags = (bi->flags & ~SB_BOOT_USER_SYSCALLS) | SB_BOOT_PROC;
	bi->mmio_gpa = 0;
	if (access(stub_path, X_OK) < 0)
		return err__errno(err, "%s (the proc backend's sandbox stub; build it with make)",
				  stub_path);

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return err__errno(err, "socketpair for the sandbox channel");
	sb->pid = fork();
	if (sb->pid < 0) {
		ret = err__errno(err, "fork of the sandbox process");
		sb->pid = 0;
		close(sv[0]);
		close(sv[1]);
		return ret;
	}
	if (sb->pid == 0)
		proc__child(sv[1], sb->ram.fd, stub_path, parent);
	close(sv[1]);
	sb->chan = sv[0];

	memset(&st, 0, sizeof(st));
	st.magic = SB_PROC_MAGIC;
	st.mem_size = sb->ram.size;
	st.entry = entry;
	st.arg = SB_BOOTINFO_GPA;
	/* the rootfs window, read-only as in the VM */
	st.ro_lo = bi->initrd_gpa & ~(SB_PAGE_2M - 1);
	st.ro_hi = sb->ram.size;
	if (send(sb->chan, &st, sizeof(st), MSG_NOSIGNAL) != (ssize_t)sizeof(st))
		return err__errno(err, "starting the sandbox process (pid %d)", (int)sb->pid);
	return 0;
}

static void proc__kill(struct proc_sandbox *sb)
{
	if (sb->pid <= 0)
		return;
	kill(sb->pid, SIGKILL);
	while (waitpid(sb->pid, &sb->wait_status, 0) < 0 && errno == EINTR)
		;
	sb->pid = 0;
}

/* The channel closed without a final hypercall: how did the process end? */
static int proc__died(struct proc_sandbox *sb, struct sb_err *err)
{
	int st;

	while (waitpid(sb->pid, &st, 0) < 0) {
		if (errno != EINTR)
			return err__errno(err, "waitpid for the sandbox process");
	}
	sb->pid = 0;
	sb->wait_status = st;
	if (WIFSIGNALED(st))
		return err__set(err, -EIO,
				"the sandbox process was killed by signal %d (%s) without a word from "
				"its guest kernel (after %llu hypercalls)",
				WTERMSIG(st), strsignal(WTERMSIG(st)),
				(unsigned long long)sb->msgs);
	if (WEXITSTATUS(st) == 126)
		return err__set(err, -EIO, "could not start the sandbox stub");
	if (sb->msgs == 0)
		return err__set(err, -EIO, "the sandbox stub failed to set up (code %d)",
				WEXITSTATUS(st));
	return err__set(err, -EIO, "the sandbox process exited (status %d) without a word "
			"from its guest kernel", WEXITSTATUS(st));
}

static int proc__timed_out(struct proc_sandbox *sb, uint64_t ns, struct sb_err *err)
{
	proc__kill(sb);
	if (ns % 1000000000ULL)
		err__set(err, 0, "timed out after %.3g s", (double)ns / 1e9);
	else
		err__set(err, 0, "timed out after %llu s", (unsigned long long)(ns / 1000000000ULL));
	return 124;
}

int proc__run(struct proc_sandbox *sb, uint64_t timeout_ns, struct sb_err *err)
{
	static const struct sb_proc_reply done = { 0 };
	int ret;

	err__clear(err);
	ret = timeout__start(&sb->timeout, timeout_ns, err);
	if (ret < 0)
		return ret;
	for (;;) {
		struct sb_proc_msg m;
		ssize_t n = recv(sb->chan, &m, sizeof(m), MSG_TRUNC);

		if (n < 0) {
			if (errno == EINTR) {
				if (timeout__expired(&sb->timeout)) {
					ret = proc__timed_out(sb, timeout_ns, err);
					break;
				}
				continue;
			}
			ret = err__errno(err, "reading the sandbox channel");
			break;
		}
		if (n == 0) {
			ret = proc__died(sb, err);
			break;
		}
		sb->msgs++;
		if (n != (ssize_t)sizeof(m) || m.reserved) {
			ret = err__set(err, -EPROTO, "the sandbox sent a malformed message (%zd bytes)", n);
			break;
		}
		ret = hypercall__handle(&sb->hc, m.nr, m.gpa, err);
		if (ret == HC_CONTINUE) {
			/* a sandbox gone meanwhile shows as EOF on the next recv */
			send(sb->chan, &done, sizeof(done), MSG_NOSIGNAL);
			continue;
		}
		if (ret == HC_STOP)
			ret = sb->hc.status;
		else if (ret == HC_READY)
			ret = err__set(err, -ENOTSUP, "template create is not supported on the proc backend yet");
		else if (ret == -ETIMEDOUT)
			ret = proc__timed_out(sb, timeout_ns, err);
		break;
	}
	timeout__stop(&sb->timeout);
	proc__kill(sb);
	return ret;
}

void proc__destroy(struct proc_sandbox *sb)
{
	proc__kill(sb);
	if (sb->chan >= 0)
		close(sb->chan);
	sb->chan = -1;
	ram__destroy(&sb->ram);
}
