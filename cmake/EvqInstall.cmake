# cmake --install: headers, the library, a CMake package (find_package(evq CONFIG))
# and a pkg-config file.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

install(DIRECTORY include/evq DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS evq EXPORT evqTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT evqTargets NAMESPACE evq:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/evq)

configure_package_config_file(cmake/evqConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/evqConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/evq)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/evqConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/evqConfig.cmake
  ${CMAKE_CURRENT_BINARY_DIR}/evqConfigVersion.cmake
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/evq)

configure_file(cmake/evq.pc.in ${CMAKE_CURRENT_BINARY_DIR}/evq.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/evq.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
