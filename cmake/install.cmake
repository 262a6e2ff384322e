# What `cmake --install` puts under the prefix, and the .deb/.rpm CPack builds from it:
#   bin/shield-nitro, bin/shield-nitro-enclave       the CLI and the enclave program
#   include/shield_nitro/                             the parent SDK's headers (no development-only modules)
#   lib/libsn_*.a                                     the static libraries the parent SDK needs
#   lib/cmake/shield_nitro/                           find_package(shield_nitro) -> shield_nitro::parent
#   share/pkgconfig/shield_nitro.pc                   pkg-config --static shield_nitro
# One fixed layout serves both packages: CMake searches <prefix>/lib/cmake everywhere, and
# share/pkgconfig is on pkg-config's default path on Debian and on Amazon Linux (whose
# default is lib64/pkgconfig, not lib/pkgconfig).
include(CMakePackageConfigHelpers)

set(SN_INSTALL_CMAKEDIR lib/cmake/shield_nitro)

# The parent SDK's libraries, in link order (each before the ones it uses: the pkg-config Libs line).
set(SN_INSTALL_MODULES parent channel attest kms net nsm sealed shield cbor core)

install(TARGETS shield-nitro RUNTIME DESTINATION bin)
if(TARGET shield-nitro-enclave)
  install(TARGETS shield-nitro-enclave RUNTIME DESTINATION bin)
endif()

set(SN_INSTALL_LIBS "")
set(SN_PC_LIBS "")
foreach(mod IN LISTS SN_INSTALL_MODULES)
  set_target_properties(sn_${mod} PROPERTIES EXPORT_NAME ${mod})  # shield_nitro::parent, ...
  list(APPEND SN_INSTALL_LIBS sn_${mod})
  string(APPEND SN_PC_LIBS " -lsn_${mod}")
endforeach()
install(TARGETS ${SN_INSTALL_LIBS} EXPORT shield_nitroTargets ARCHIVE DESTINATION lib)
install(EXPORT shield_nitroTargets NAMESPACE shield_nitro:: DESTINATION ${SN_INSTALL_CMAKEDIR})

# Every header except the development-only modules' (the NSM simulator, kms-local, sim), which
# no installed library implements.
install(DIRECTORY ${CMAKE_SOURCE_DIR}/include/shield_nitro DESTINATION include
  REGEX "/(nsm_sim|kms_local|sim)$" EXCLUDE)

configure_package_config_file(${CMAKE_SOURCE_DIR}/cmake/shield_nitroConfig.cmake.in
  ${CMAKE_BINARY_DIR}/install/shield_nitroConfig.cmake INSTALL_DESTINATION ${SN_INSTALL_CMAKEDIR})
# 0.x: a minor version may break the API.
write_basic_package_version_file(${CMAKE_BINARY_DIR}/install/shield_nitroConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/install/shield_nitroConfig.cmake
  ${CMAKE_BINARY_DIR}/install/shield_nitroConfigVersion.cmake DESTINATION ${SN_INSTALL_CMAKEDIR})

configure_file(${CMAKE_SOURCE_DIR}/cmake/shield_nitro.pc.in ${CMAKE_BINARY_DIR}/install/shield_nitro.pc @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/install/shield_nitro.pc DESTINATION share/pkgconfig)

# What `make package` builds before running cpack (install() itself builds nothing).
add_custom_target(sn_install_targets)
add_dependencies(sn_install_targets shield-nitro ${SN_INSTALL_LIBS})
if(TARGET shield-nitro-enclave)
  add_dependencies(sn_install_targets shield-nitro-enclave)
endif()

# CPack: one package with the programs and the SDK. The runtime dependencies are the programs'
# shared libraries, and binutils (objcopy: `eif build --runtime` packs the enclave program stripped);
# building against the SDK also needs the -dev packages (.deb Suggests; on Amazon Linux:
# openssl-devel json-devel).
set(CPACK_GENERATOR "DEB;RPM")
set(CPACK_PACKAGE_NAME shield-nitro)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR shield-nitro)
set(CPACK_PACKAGE_CONTACT "shield-nitro maintainers <shield-nitro@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
  "Shield-encrypted code and models in AWS Nitro Enclaves: CLI, enclave program, C++ parent SDK")
set(CPACK_PACKAGE_DESCRIPTION "The shield-nitro CLI, the enclave program shield-nitro-enclave, and the \
C++ parent SDK (headers, static libraries, CMake package shield_nitro and pkg-config file shield_nitro).")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES TRUE)  # the programs only: CMake never strips static libraries
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_COMPRESSION_TYPE xz)
set(CPACK_DEBIAN_PACKAGE_SECTION utils)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "libssl3, libyaml-cpp0.7, binutils")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "libssl-dev, nlohmann-json3-dev")
set(CPACK_RPM_FILE_NAME RPM-DEFAULT)
set(CPACK_RPM_PACKAGE_GROUP "Applications/System")
set(CPACK_RPM_PACKAGE_DESCRIPTION "${CPACK_PACKAGE_DESCRIPTION}")
set(CPACK_RPM_PACKAGE_REQUIRES "openssl-libs >= 3, yaml-cpp, binutils")
# rpmbuild's generated requirements stay for the programs' libraries (libstdc++ and glibc symbol
# versions included), not for the .pc file: pkgconfig(...) would pull in the -devel packages.
set(CPACK_RPM_SPEC_MORE_DEFINE "%global __requires_exclude ^(pkgconfig[(].*|/usr/bin/pkg-config)$")
# Directories the package must not claim (owned by other packages, or shared).
set(CPACK_RPM_EXCLUDE_FROM_AUTO_FILELIST_ADDITION /usr/lib/cmake /usr/share/pkgconfig)
include(CPack)
