// The RAM filesystem of mpfr's QEMU port.
#ifndef MICROPY_INCLUDED_QEMU_MPFR_RAMDISK_H
#define MICROPY_INCLUDED_QEMU_MPFR_RAMDISK_H

// Mounts the RAM block device at / (formatting it first if it holds no filesystem).
void ramdisk_mount(void);

#endif // MICROPY_INCLUDED_QEMU_MPFR_RAMDISK_H
