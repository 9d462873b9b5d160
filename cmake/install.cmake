# Installs what a consumer needs: the headers, the CMake package (asyncstate::asyncstate
# plus the optional components RocksDB, Redis, HTTP and Analyzer), a pkg-config file and,
# when the analyzer was built, the clang-tidy plugin and the asyncstate-tidy driver.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

# A project that vendors asyncstate (add_subdirectory, FetchContent) does not install it
# along with itself unless it asks to.
option(ASYNCSTATE_INSTALL "Generate asyncstate's install rules" ${PROJECT_IS_TOP_LEVEL})

if(TARGET AsyncStateTidyModule AND TARGET asyncstate-tidy)
  # The installed package's names, also for projects that add_subdirectory() this one.
  add_library(asyncstate::tidy-plugin ALIAS AsyncStateTidyModule)
  add_executable(asyncstate::asyncstate-tidy ALIAS asyncstate-tidy)
  set_target_properties(AsyncStateTidyModule PROPERTIES EXPORT_NAME tidy-plugin)
  set(ASYNCSTATE_TIDY_LLVM_MAJOR "${ASYNCSTATE_LLVM_VERSION}")
else()
  set(ASYNCSTATE_TIDY_LLVM_MAJOR "")
endif()
if(NOT ASYNCSTATE_INSTALL)
  return()
endif()

# The plugin is architecture-specific, so the package lives under LIBDIR, not DATADIR.
set(ASYNCSTATE_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/asyncstate" CACHE STRING
    "Where the CMake package files go, relative to the install prefix")
set(ASYNCSTATE_INSTALL_PLUGINDIR "${CMAKE_INSTALL_LIBDIR}/asyncstate" CACHE STRING
    "Where the clang-tidy plugin goes, relative to the install prefix")

install(DIRECTORY "${PROJECT_SOURCE_DIR}/include/asyncstate" DESTINATION "${CMAKE_INSTALL_INCLUDEDIR}"
        FILES_MATCHING PATTERN "*.hpp")
install(TARGETS asyncstate EXPORT asyncstateTargets)
install(EXPORT asyncstateTargets NAMESPACE asyncstate:: DESTINATION "${ASYNCSTATE_INSTALL_CMAKEDIR}")

# The analyzer is optional: when it was not built, the package reports the Analyzer
# component as missing instead of pretending to have it.
if(TARGET asyncstate::tidy-plugin)
  # Keeps the LLVM library directory the driver was linked from in its installed RPATH.
  set_target_properties(asyncstate-tidy PROPERTIES INSTALL_RPATH_USE_LINK_PATH ON)
  install(TARGETS AsyncStateTidyModule asyncstate-tidy EXPORT asyncstateAnalyzerTargets
          LIBRARY DESTINATION "${ASYNCSTATE_INSTALL_PLUGINDIR}"
          RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}")
  install(EXPORT asyncstateAnalyzerTargets NAMESPACE asyncstate:: DESTINATION "${ASYNCSTATE_INSTALL_CMAKEDIR}")
endif()

configure_package_config_file("${PROJECT_SOURCE_DIR}/cmake/asyncstateConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/asyncstateConfig.cmake"
  INSTALL_DESTINATION "${ASYNCSTATE_INSTALL_CMAKEDIR}")
# 0.x releases may break the API with every minor version.
write_basic_package_version_file("${PROJECT_BINARY_DIR}/asyncstateConfigVersion.cmake"
  COMPATIBILITY SameMinorVersion)
install(FILES "${PROJECT_BINARY_DIR}/asyncstateConfig.cmake" "${PROJECT_BINARY_DIR}/asyncstateConfigVersion.cmake"
        DESTINATION "${ASYNCSTATE_INSTALL_CMAKEDIR}")

# The .pc file finds its prefix from its own location (pkg-config's ${pcfiledir}), so
# an install moved elsewhere, or made with `cmake --install --prefix`, stays correct.
file(RELATIVE_PATH ASYNCSTATE_PC_TO_PREFIX "/prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/prefix")
string(REGEX REPLACE "/$" "" ASYNCSTATE_PC_TO_PREFIX "${ASYNCSTATE_PC_TO_PREFIX}")
if(TARGET asyncstate::tidy-plugin)
  set(ASYNCSTATE_PC_ANALYZER "tidy_plugin=\${prefix}/${ASYNCSTATE_INSTALL_PLUGINDIR}/$<TARGET_FILE_NAME:AsyncStateTidyModule>
tidy=\${prefix}/${CMAKE_INSTALL_BINDIR}/asyncstate-tidy
tidy_llvm_major=${ASYNCSTATE_TIDY_LLVM_MAJOR}")
else()
  set(ASYNCSTATE_PC_ANALYZER "")
endif()
configure_file("${PROJECT_SOURCE_DIR}/asyncstate.pc.in" "${PROJECT_BINARY_DIR}/asyncstate.pc.gen" @ONLY)
file(GENERATE OUTPUT "${PROJECT_BINARY_DIR}/asyncstate.pc" INPUT "${PROJECT_BINARY_DIR}/asyncstate.pc.gen")
install(FILES "${PROJECT_BINARY_DIR}/asyncstate.pc" DESTINATION "${CMAKE_INSTALL_LIBDIR}/pkgconfig")

# One .pc file per backend component, as find_package's components: each requires the
# library and the pkg-config modules of the Debian packages its headers need. They are
# installed whether or not this build found those packages; a consumer without them gets
# pkg-config's "Package <module> was not found".
#   component  CMake component  target        requires     Debian package      header
set(ASYNCSTATE_PC_COMPONENTS
    "rocksdb|RocksDB|rocksdb|rocksdb|librocksdb-dev|the RocksDB backend|asyncstate/backend/rocksdb.hpp"
    "redis|Redis|redis|hiredis|libhiredis-dev|the Redis backend|asyncstate/backend/redis.hpp"
    "http|HTTP|metrics_http|cpp-httplib|libcpp-httplib-dev|the Prometheus /metrics endpoint|asyncstate/metrics_http.hpp")
foreach(component_line IN LISTS ASYNCSTATE_PC_COMPONENTS)
  string(REPLACE "|" ";" fields "${component_line}")
  list(GET fields 0 ASYNCSTATE_PC_COMPONENT)
  list(GET fields 1 ASYNCSTATE_PC_COMPONENT_CMAKE)
  list(GET fields 2 ASYNCSTATE_PC_COMPONENT_TARGET)
  list(GET fields 3 ASYNCSTATE_PC_COMPONENT_REQUIRES)
  list(GET fields 4 ASYNCSTATE_PC_COMPONENT_DEBIAN)
  list(GET fields 5 ASYNCSTATE_PC_COMPONENT_WHAT)
  list(GET fields 6 ASYNCSTATE_PC_COMPONENT_HEADER)
  set(pc "${PROJECT_BINARY_DIR}/asyncstate-${ASYNCSTATE_PC_COMPONENT}.pc")
  configure_file("${PROJECT_SOURCE_DIR}/asyncstate-component.pc.in" "${pc}" @ONLY)
  install(FILES "${pc}" DESTINATION "${CMAKE_INSTALL_LIBDIR}/pkgconfig")
endforeach()
