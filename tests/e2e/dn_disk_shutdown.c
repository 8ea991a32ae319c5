/* Makes a mounted ext4 filesystem fail like a dead disk: for
 * tests/e2e/dn_disk_eio.sh.
 *
 *   dn_disk_shutdown MOUNTPOINT
 *
 * Issues EXT4_IOC_SHUTDOWN with EXT4_GOING_FLAGS_NOLOGFLUSH on the mount
 * point: from then on every read, write, fsync, open and rename there
 * fails with EIO until it is unmounted (device-mapper's error target is
 * not at hand on the test machines). Exits 0 once done, 1 with a message
 * otherwise. */
#include <errno.h>
#include <fcntl.h>
#include <linux/types.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define EXT4_IOC_SHUTDOWN	    _IOR('X', 125, __u32)
#define EXT4_GOING_FLAGS_NOLOGFLUSH 0x2

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: dn_disk_shutdown MOUNTPOINT\n");
		return 1;
	}
	int fd = open(argv[1], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "dn_disk_shutdown: cannot open '%s': %s\n", argv[1],
			strerror(errno));
		return 1;
	}
	__u32 flags = EXT4_GOING_FLAGS_NOLOGFLUSH;
	if (ioctl(fd, EXT4_IOC_SHUTDOWN, &flags) < 0) {
		fprintf(stderr, "dn_disk_shutdown: EXT4_IOC_SHUTDOWN on '%s': %s\n", argv[1],
			strerror(errno));
		close(fd);
		return 1;
	}
	close(fd);
	return 0;
}
