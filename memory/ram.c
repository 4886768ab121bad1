/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "memory/ram.h"
#include "sbtypes.h"
#include "snapshot/format.h"

static int ram__map_anon(struct guest_ram *ram, struct sb_err *err)
{
	void *p = mmap(NULL, ram->size, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		return err__errno(err, "mmap of %llu MiB guest RAM",
				  (unsigned long long)(ram->size >> 20));
	ram->host = p;
	ram->fd = -1;
	return 0;
}

static int ram__map_memfd(struct guest_ram *ram, struct sb_err *err)
{
	void *p;
	int fd, ret;

	fd = memfd_create("snapbox-ram", MFD_CLOEXEC);
	if (fd < 0)
		return err__errno(err, "memfd_create");
	if (ftruncate(fd, (off_t)ram->size) < 0) {
		ret = err__errno(err, "ftruncate of the guest RAM memfd");
		close(fd);
		return ret;
	}
	p = mmap(NULL, ram->size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
	if (p == MAP_FAILED) {
		ret = err__errno(err, "mmap of the guest RAM memfd");
		close(fd);
		return ret;
	}
	ram->host = p;
	ram->fd = fd;
	return 0;
}

/* RAM_FILE_PRIV is a template's mem.img mapped copy-on-write: clones share
 * its pages (the page cache) and pay only for what they write.  It is only
 * ever made from a reserved range, by ram__fill_from_file(). */

static int ram__map_reserved(struct guest_ram *ram, struct sb_err *err)
{
	void *p = mmap(NULL, ram->size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		return err__errno(err, "reserving %llu MiB for guest RAM",
				  (unsigned long long)(ram->size >> 20));
	ram->host = p;
	return 0;
}

static void ram__unmap_common(struct guest_ram *ram)
{
	if (ram->host)
		munmap(ram->host, ram->size);
	if (ram->fd >= 0)
		close(ram->fd);
	ram->host = NULL;
	ram->fd = -1;
}

static const struct ram_ops ram_backends[RAM_BACKEND_COUNT] = {
	[RAM_ANON] = { "anonymous", ram__map_anon, ram__unmap_common },
	[RAM_MEMFD] = { "memfd", ram__map_memfd, ram__unmap_common },
	[RAM_FILE_PRIV] = { "file", NULL, ram__unmap_common },
	[RAM_RESERVED] = { "reserved", ram__map_reserved, ram__unmap_common },
};

int ram__create(struct guest_ram *ram, enum ram_backend backend, uint64_t size,
		struct sb_err *err)
{
	long page = sysconf(_SC_PAGESIZE);
	int ret;

	memset(ram, 0, sizeof(*ram));
	ram->fd = -1;
	if (backend == RAM_FILE_PRIV)
		return err__set(err, -EINVAL, "the file backend is made by ram__fill_from_file()");
	if ((unsigned)backend >= RAM_BACKEND_COUNT)
		return err__set(err, -EINVAL, "unknown guest RAM backend %d", (int)backend);
	if (size == 0 || size % (uint64_t)page)
		return err__set(err, -EINVAL, "guest RAM size %llu is not a multiple of the page size",
				(unsigned long long)size);
	ram->size = size;
	ram->backend = backend;
	ram->ops = &ram_backends[backend];
	ret = ram->ops->map(ram, err);
	if (ret < 0) {
		ram->ops = NULL;
		ram->size = 0;
	}
	return ret;
}



int ram__fill_from_file(struct guest_ram *ram, int fd, struct sb_err *err)
{
	struct stat sb;
	void *p;

	if (ram->backend != RAM_RESERVED)
		return err__set(err, -EINVAL, "guest RAM is not a reserved range");
	if (fstat(fd, &sb) < 0)
		return err__errno(err, "fstat of the memory image");
	if ((uint64_t)sb.st_size < ram->size)
		return err__set(err, -EBADMSG,
				"the memory image is %lld bytes, shorter than the %llu bytes of RAM it claims",
				(long long)sb.st_size, (unsigned long long)ram->size);
	p = mmap(ram->host, ram->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE,
		 fd, 0);
	if (p == MAP_FAILED)
		return err__errno(err, "mmap (MAP_PRIVATE) of the memory image");
	ram->backend = RAM_FILE_PRIV;
	ram->ops = &ram_backends[RAM_FILE_PRIV];
	return 0;
}

int ram__map_overlays(struct guest_ram *ram, const struct snap_overlay_run *runs, uint32_t n,
		      const int *layer_fd, unsigned n_layers, struct sb_err *err)
{
	if (n && ram->backend != RAM_FILE_PRIV)
		return err__set(err, -EINVAL, "overlays go over a template's memory image");
	for (uint32_t i = 0; i < n; i++) {
		const struct snap_overlay_run *r = &runs[i];
		uint64_t len = (uint64_t)r->npages * SNAP_PAGE;
		void *at = ram__gpa_to_host(ram, r->gpa, len);

		if (!at || r->layer >= n_layers)
			return err__set(err, -EINVAL, "overlay run %u lies outside guest RAM or its layers", i);
		if (mmap(at, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED | MAP_NORESERVE,
			 layer_fd[r->layer], (off_t)r->img_off) != at)
			return err__errno(err, "mapping overlay run %u (%u pages of layer %u) over guest RAM",
					  i, r->npages, r->layer);
	}
	return 0;
}

void ram__destroy(struct guest_ram *ram)
{
	if (ram->ops)
		ram->ops->unmap(ram);
	ram->ops = NULL;
	ram->size = 0;
}

void *ram__gpa_to_host(const struct guest_ram *ram, uint64_t gpa, uint64_t len)
{
	if (!ram->host || !sb_range_in(gpa, len, 0, ram->size))
		return NULL;
	return (uint8_t *)ram->host + gpa;
}
