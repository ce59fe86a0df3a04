// A block device in RAM holding the filesystem mounted at / (so scripts and tests can write
// files). Its contents survive a soft reset, not a power cycle.
#include <string.h>

#include "py/runtime.h"
#include "py/mperrno.h"
#include "extmod/vfs.h"
#include "extmod/vfs_lfs.h"

#include "ramdisk.h"

#define RAMDISK_BLOCK_SIZE (512)
#define RAMDISK_BLOCKS (MICROPY_HW_RAMFS_SIZE / RAMDISK_BLOCK_SIZE)

static uint8_t ramdisk_data[RAMDISK_BLOCKS * RAMDISK_BLOCK_SIZE] __attribute__((aligned(4)));

typedef struct _ramdisk_obj_t {
    mp_obj_base_t base;
} ramdisk_obj_t;

// (self, block_num, buf[, offset]): the extended block protocol that littlefs uses.
static uint8_t *ramdisk_range(size_t n_args, const mp_obj_t *args, mp_buffer_info_t *buf, int flags) {
    mp_get_buffer_raise(args[2], buf, flags);
    mp_uint_t addr = mp_obj_get_int(args[1]) * RAMDISK_BLOCK_SIZE;
    if (n_args > 3) {
        addr += mp_obj_get_int(args[3]);
    }
    if (addr > sizeof(ramdisk_data) || buf->len > sizeof(ramdisk_data) - addr) {
        mp_raise_OSError(MP_EIO);
    }
    return &ramdisk_data[addr];
}

static mp_obj_t ramdisk_readblocks(size_t n_args, const mp_obj_t *args) {
    mp_buffer_info_t buf;
    uint8_t *p = ramdisk_range(n_args, args, &buf, MP_BUFFER_WRITE);
    memcpy(buf.buf, p, buf.len);
    return MP_OBJ_NEW_SMALL_INT(0);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(ramdisk_readblocks_obj, 3, 4, ramdisk_readblocks);

static mp_obj_t ramdisk_writeblocks(size_t n_args, const mp_obj_t *args) {
    mp_buffer_info_t buf;
    uint8_t *p = ramdisk_range(n_args, args, &buf, MP_BUFFER_READ);
    memcpy(p, buf.buf, buf.len);
    return MP_OBJ_NEW_SMALL_INT(0);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(ramdisk_writeblocks_obj, 3, 4, ramdisk_writeblocks);

static mp_obj_t ramdisk_ioctl(mp_obj_t self, mp_obj_t op_in, mp_obj_t arg) {
    (void)self;
    (void)arg;
    switch (mp_obj_get_int(op_in)) {
        case MP_BLOCKDEV_IOCTL_BLOCK_COUNT:
            return MP_OBJ_NEW_SMALL_INT(RAMDISK_BLOCKS);
        case MP_BLOCKDEV_IOCTL_BLOCK_SIZE:
            return MP_OBJ_NEW_SMALL_INT(RAMDISK_BLOCK_SIZE);
        default:
            // init, deinit, sync, erase: nothing to do in RAM.
            return MP_OBJ_NEW_SMALL_INT(0);
    }
}
static MP_DEFINE_CONST_FUN_OBJ_3(ramdisk_ioctl_obj, ramdisk_ioctl);

static const mp_rom_map_elem_t ramdisk_locals_dict_table[] = {
    { MP_ROM_QSTR(MP_QSTR_readblocks), MP_ROM_PTR(&ramdisk_readblocks_obj) },
    { MP_ROM_QSTR(MP_QSTR_writeblocks), MP_ROM_PTR(&ramdisk_writeblocks_obj) },
    { MP_ROM_QSTR(MP_QSTR_ioctl), MP_ROM_PTR(&ramdisk_ioctl_obj) },
};
static MP_DEFINE_CONST_DICT(ramdisk_locals_dict, ramdisk_locals_dict_table);

static MP_DEFINE_CONST_OBJ_TYPE(
    ramdisk_type,
    MP_QSTR_RAMDisk,
    MP_TYPE_FLAG_NONE,
    locals_dict, &ramdisk_locals_dict
    );

static const ramdisk_obj_t ramdisk_obj = { { &ramdisk_type } };

static mp_obj_t ramdisk_new_vfs(void) {
    return mp_call_function_1(MP_OBJ_FROM_PTR(&mp_type_vfs_lfs2), MP_OBJ_FROM_PTR(&ramdisk_obj));
}

void ramdisk_mount(void) {
    nlr_buf_t nlr;
    if (nlr_push(&nlr) == 0) {
        mp_obj_t fs;
        nlr_buf_t nlr2;
        if (nlr_push(&nlr2) == 0) {
            fs = ramdisk_new_vfs();
            nlr_pop();
        } else {
            // First boot (or a broken filesystem): format.
            mp_obj_t mkfs = mp_load_attr(MP_OBJ_FROM_PTR(&mp_type_vfs_lfs2), MP_QSTR_mkfs);
            mp_call_function_1(mkfs, MP_OBJ_FROM_PTR(&ramdisk_obj));
            fs = ramdisk_new_vfs();
        }
        mp_call_function_2(MP_OBJ_FROM_PTR(&mp_vfs_mount_obj), fs, MP_OBJ_NEW_QSTR(MP_QSTR__slash_));
        mp_vfs_chdir(MP_OBJ_NEW_QSTR(MP_QSTR__slash_));
        nlr_pop();
    } else {
        mp_printf(&mp_plat_print, "MPY: cannot mount the RAM filesystem: ");
        mp_obj_print_exception(&mp_plat_print, MP_OBJ_FROM_PTR(nlr.ret_val));
    }
}
