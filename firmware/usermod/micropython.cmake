# MicroPython user C module: the mpfr telemetry agent and `import mpfr` (CMake-based ports).
#   make BOARD=... USER_C_MODULES=/path/to/firmware/usermod/micropython.cmake
add_library(usermod_mpfr INTERFACE)

set(MPFR_AGENT_DIR ${CMAKE_CURRENT_LIST_DIR}/../agent)

target_sources(usermod_mpfr INTERFACE
    ${CMAKE_CURRENT_LIST_DIR}/modmpfr.c
    ${MPFR_AGENT_DIR}/mpfr_agent.c
    ${MPFR_AGENT_DIR}/mpfr_proto.c
    ${MPFR_AGENT_DIR}/mpfr_rtt.c
)

target_include_directories(usermod_mpfr INTERFACE
    ${CMAKE_CURRENT_LIST_DIR}
    ${MPFR_AGENT_DIR}
)

target_link_libraries(usermod INTERFACE usermod_mpfr)
