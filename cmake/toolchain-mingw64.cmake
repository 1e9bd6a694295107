# Cross-compiling evq for 64-bit Windows with MinGW-w64 on Debian, and running
# what it builds (the test suite, the examples) under Wine.
#
#   apt-get install g++-mingw-w64-x86-64-posix wine wine64 googletest
#   cmake -S . -B build-win -DCMAKE_TOOLCHAIN_FILE=cmake/toolchain-mingw64.cmake
#
# The -posix compiler variant: its libstdc++ has std::thread and std::mutex
# (over winpthreads); the -win32 variant lacks them in GCC 12.
set(CMAKE_SYSTEM_NAME Windows)
set(CMAKE_SYSTEM_PROCESSOR x86_64)

set(EVQ_MINGW_TRIPLE x86_64-w64-mingw32)
set(CMAKE_C_COMPILER ${EVQ_MINGW_TRIPLE}-gcc-posix)
set(CMAKE_CXX_COMPILER ${EVQ_MINGW_TRIPLE}-g++-posix)
set(CMAKE_RC_COMPILER ${EVQ_MINGW_TRIPLE}-windres)

# Headers and libraries come from the MinGW sysroot only; programs (code
# generators, Wine) from the build machine.
set(CMAKE_FIND_ROOT_PATH /usr/${EVQ_MINGW_TRIPLE})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# Static: libgcc, libstdc++ and winpthread (pulled in by -posix) go into each
# .exe, so the binaries run under Wine (or on Windows) without MinGW's DLLs
# on the path.
set(CMAKE_EXE_LINKER_FLAGS_INIT "-static -static-libgcc -static-libstdc++")
set(CMAKE_SHARED_LINKER_FLAGS_INIT "-static -static-libgcc -static-libstdc++")

# ctest and add_custom_command run the .exe files through Wine. Debian puts
# wine64 in /usr/lib/wine; /usr/bin/wine is a wrapper that picks it when the
# 32-bit wine is absent. Quiet (WINEDEBUG=-all), and without the prompts to
# install Mono and Gecko that a fresh Wine prefix would otherwise show.
find_program(EVQ_WINE NAMES wine64 wine HINTS /usr/lib/wine)
if(EVQ_WINE)
  set(CMAKE_CROSSCOMPILING_EMULATOR
      ${CMAKE_COMMAND} -E env WINEDEBUG=-all WINEDLLOVERRIDES=mscoree,mshtml= ${EVQ_WINE})
endif()
