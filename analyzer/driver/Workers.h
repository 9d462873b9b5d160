// -j N: one clang-tidy process per source file, N at a time. Each worker is this
// driver again, exporting its diagnostics (and, for the migration report, its UDF
// classes) to files the parent merges, so the result does not depend on N.
#pragma once

#include "driver/Findings.h"

#include <string>
#include <vector>

namespace asyncstate_tidy {

struct WorkerOutput {
  std::vector<std::string> ExportFiles;     // one --export-fixes YAML per source file
  std::vector<std::string> InventoryFiles;  // one UDF class list per source file, if asked
  int Status = 0;                           // the first failing worker's status, in file order
};

// Runs `Executable Flags... --export-fixes=... Source CompilerArgs...` for every
// source, Jobs at a time, with temporary files under Directory. Each worker's
// stderr is printed after all finished, in source order, so nothing interleaves.
WorkerOutput runWorkers(const std::string& Executable, const std::vector<std::string>& Flags,
                        const std::vector<std::string>& Sources, const std::vector<std::string>& CompilerArgs,
                        unsigned Jobs, const std::string& Directory, bool WithInventory);

// The files of the compilation database in BuildPath, sorted.
bool databaseFiles(const std::string& BuildPath, std::vector<std::string>& Files, std::string& Error);

// The UDF classes a worker found, as JSON.
bool writeInventory(const std::string& Path, const Inventory& Classes, std::string& Error);
bool readInventory(const std::string& Path, Inventory& Classes, std::string& Error);

}  // namespace asyncstate_tidy
