# The Windows half of the library: the IOCP backend (src/sys/iocp) and the
# Winsock net layer (src/net/windows). Included from src/CMakeLists.txt under
# if(WIN32), after add_library(evq ...).
set(evq_windows_dir ${PROJECT_SOURCE_DIR}/src)
target_sources(evq PRIVATE
  ${evq_windows_dir}/sys/iocp/afd.cpp
  ${evq_windows_dir}/sys/iocp/iocp_ring.cpp
  ${evq_windows_dir}/sys/iocp/iocp_ring_ops.cpp
  ${evq_windows_dir}/sys/iocp/iocp_selector.cpp
  ${evq_windows_dir}/sys/iocp/poll_group.cpp
  ${evq_windows_dir}/sys/iocp/sock_state.cpp
  ${evq_windows_dir}/sys/iocp/windows_error.cpp
  ${evq_windows_dir}/sys/iocp/winsock.cpp
  ${evq_windows_dir}/net/windows/sockaddr.cpp
  ${evq_windows_dir}/net/windows/socket_ops.cpp
  ${evq_windows_dir}/net/windows/tcp.cpp
  ${evq_windows_dir}/net/windows/udp.cpp)
# Windows 7 is the floor (WSA_FLAG_NO_HANDLE_INHERIT; everything else the
# backend needs is Vista's). WIN32_LEAN_AND_MEAN and NOMINMAX keep windows.h
# from defining min/max and from including the old winsock.h.
target_compile_definitions(evq PRIVATE
  EVQ_HAVE_IOCP=1 _WIN32_WINNT=0x0601 WIN32_LEAN_AND_MEAN NOMINMAX)
# ws2_32: Winsock. ntdll: NtCreateFile, NtDeviceIoControlFile and
# NtCancelIoFileEx for the AFD poll requests. A static evq passes both on to
# whatever links it.
target_link_libraries(evq PRIVATE ws2_32 ntdll)
