#pragma once
// The single place the version lives; CMake reads it from here.
#define ASYNCSTATE_VERSION_MAJOR 0
#define ASYNCSTATE_VERSION_MINOR 1
#define ASYNCSTATE_VERSION_PATCH 0
#define ASYNCSTATE_VERSION_STRING "0.1.0"
