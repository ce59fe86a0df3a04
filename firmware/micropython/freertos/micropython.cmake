# mpfr's FreeRTOS threading backend for CMake-based MicroPython ports (rp2, esp32-like builds).
#
#   include(${MPFR_FIRMWARE_DIR}/micropython/freertos/micropython.cmake)
#   target_link_libraries(${MICROPY_TARGET} mpfr_freertos)
#
# The port links its own FreeRTOS kernel (the rp2 SDK's FreeRTOS-Kernel target, say) and puts
# FreeRTOSConfig.h, which includes mpfr_config.h first, on the include path.
add_library(mpfr_freertos INTERFACE)

set(MPFR_FREERTOS_DIR ${CMAKE_CURRENT_LIST_DIR})
get_filename_component(MPFR_FIRMWARE_DIR ${CMAKE_CURRENT_LIST_DIR}/../.. ABSOLUTE)

target_sources(mpfr_freertos INTERFACE
    ${MPFR_FREERTOS_DIR}/mpthreadport.c
    ${MPFR_FREERTOS_DIR}/mpfr_mphal.c
    ${MPFR_FREERTOS_DIR}/mpfr_pyframes.c
    ${MPFR_FIRMWARE_DIR}/runtime/mpfr_service.c
)

target_include_directories(mpfr_freertos INTERFACE
    ${MPFR_FREERTOS_DIR}
    ${MPFR_FIRMWARE_DIR}/runtime
    ${MPFR_FIRMWARE_DIR}/agent
)

# The allocator runs under the GC lock until the caller holds the new block (mpthreadport.c,
# __wrap_gc_alloc). The VM's entry keeps each thread's Python frames for a debugger
# (mpfr_pyframes.c; FreeRTOSConfig.h needs configNUM_THREAD_LOCAL_STORAGE_POINTERS >= 2).
target_link_options(mpfr_freertos INTERFACE
    -Wl,--wrap=gc_alloc
    -Wl,--wrap=gc_realloc
    -Wl,--wrap=mp_execute_bytecode
    -Wl,--undefined=mpfr_pyframes_tls_index
)

target_compile_definitions(mpfr_freertos INTERFACE
    MICROPY_MPTHREADPORT_H="${MPFR_FREERTOS_DIR}/mpthreadport.h"
)
