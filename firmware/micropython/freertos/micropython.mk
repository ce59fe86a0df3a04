# mpfr's FreeRTOS threading backend for make-based MicroPython ports.
#
# Include it from the port's Makefile after py/py.mk, then add $(MPFR_FREERTOS_OBJ) to OBJ; it adds
# $(MPFR_FREERTOS_LDFLAGS) to LDFLAGS (a port linking with its own flags must pass those too):
#   FREERTOS_KERNEL      FreeRTOS-Kernel tree (tasks.c, include/, portable/)
#   FREERTOS_PORT        the kernel port below portable/, e.g. GCC/ARM_CM3 (default) or a
#                        ThirdParty SMP port
#   FREERTOS_PORT_DIR    a port folder outside the kernel (portmacro.h, port.c), e.g. mpfr's
#                        smp/cm33_mps2; overrides FREERTOS_PORT
#   FREERTOS_HEAP        portable/MemMang allocator (heap_4)
#   FREERTOS_BUILD_KERNEL 0 when the port compiles the kernel itself (default 1)
# The port's include path must hold FreeRTOSConfig.h, which includes mpfr_config.h first.

MPFR_FREERTOS_DIR := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
MPFR_FIRMWARE_DIR := $(abspath $(MPFR_FREERTOS_DIR)/../..)

FREERTOS_PORT ?= GCC/ARM_CM3
FREERTOS_HEAP ?= heap_4
FREERTOS_BUILD_KERNEL ?= 1

ifeq ($(FREERTOS_KERNEL),)
$(error FREERTOS_KERNEL is not set: pass the FreeRTOS-Kernel folder, e.g. FREERTOS_KERNEL=~/.cargo/registry/src/*/freertos-next-0.12.0/FreeRTOS-Kernel)
endif
ifeq ($(wildcard $(FREERTOS_KERNEL)/tasks.c),)
$(error FREERTOS_KERNEL=$(FREERTOS_KERNEL) holds no FreeRTOS kernel (no tasks.c))
endif
FREERTOS_KERNEL := $(abspath $(FREERTOS_KERNEL))
FREERTOS_PORT_DIR ?= $(FREERTOS_KERNEL)/portable/$(FREERTOS_PORT)
ifeq ($(wildcard $(FREERTOS_PORT_DIR)/portmacro.h),)
$(error FREERTOS_PORT_DIR=$(FREERTOS_PORT_DIR) holds no FreeRTOS port (no portmacro.h))
endif

INC += -I$(MPFR_FREERTOS_DIR)
INC += -I$(MPFR_FIRMWARE_DIR)/runtime
INC += -I$(MPFR_FIRMWARE_DIR)/agent
INC += -I$(FREERTOS_KERNEL)/include
INC += -I$(FREERTOS_PORT_DIR)

# MicroPython includes <mpthreadport.h>: ours.
CFLAGS += -DMICROPY_MPTHREADPORT_H='"$(MPFR_FREERTOS_DIR)/mpthreadport.h"'

# The allocator runs under the GC lock until the caller holds the new block (mpthreadport.c,
# __wrap_gc_alloc): the link must wrap both entry points. The VM's entry is wrapped to keep each
# thread's Python frames where a debugger finds them (mpfr_pyframes.c), and the symbol naming
# their slot is kept.
MPFR_FREERTOS_LDFLAGS = -Wl,--wrap=gc_alloc -Wl,--wrap=gc_realloc
MPFR_FREERTOS_LDFLAGS += -Wl,--wrap=mp_execute_bytecode -Wl,--undefined=mpfr_pyframes_tls_index
LDFLAGS += $(MPFR_FREERTOS_LDFLAGS)

MPFR_FREERTOS_SRC_C = \
	micropython/freertos/mpthreadport.c \
	micropython/freertos/mpfr_mphal.c \
	micropython/freertos/mpfr_pyframes.c \
	runtime/mpfr_service.c \

MPFR_FREERTOS_OBJ = $(addprefix $(BUILD)/mpfr/, $(MPFR_FREERTOS_SRC_C:.c=.o))

$(BUILD)/mpfr/%.o: $(MPFR_FIRMWARE_DIR)/%.c
	$(call compile_c)

ifeq ($(FREERTOS_BUILD_KERNEL),1)
MPFR_KERNEL_SRC_C = \
	tasks.c \
	list.c \
	queue.c \
	timers.c \
	portable/MemMang/$(FREERTOS_HEAP).c \

MPFR_KERNEL_OBJ = $(addprefix $(BUILD)/freertos/, $(MPFR_KERNEL_SRC_C:.c=.o))
MPFR_KERNEL_OBJ += $(BUILD)/freertos/port/port.o
MPFR_FREERTOS_OBJ += $(MPFR_KERNEL_OBJ)

# The kernel is not written for MicroPython's warning set.
$(MPFR_KERNEL_OBJ): CFLAGS += -Wno-error

$(BUILD)/freertos/port/port.o: $(FREERTOS_PORT_DIR)/port.c
	$(call compile_c)

$(BUILD)/freertos/%.o: $(FREERTOS_KERNEL)/%.c
	$(call compile_c)
endif
