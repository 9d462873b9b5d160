// A plugin built against one LLVM major version and loaded into another clang-tidy
// shares no ABI with it and crashes in unrelated places; stop at load time with a
// message that says what to rebuild instead.
#include "clang/Basic/Version.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdlib>
#include <string>

namespace {

struct HostVersionCheck {
  HostVersionCheck() {
    const std::string Host = clang::getClangFullVersion();
    llvm::StringRef Rest = llvm::StringRef(Host);
    const size_t At = Rest.find("version ");
    unsigned Major = 0;
    if (At != llvm::StringRef::npos) Rest.substr(At + 8).consumeInteger(10, Major);
    if (Major == ASYNCSTATE_LLVM_VERSION_MAJOR) return;
    llvm::errs() << "error: the asyncstate clang-tidy plugin was built for LLVM " << ASYNCSTATE_LLVM_VERSION_MAJOR
                 << " but was loaded by '" << Host << "'; rebuild it with -DASYNCSTATE_LLVM_VERSION=" << Major
                 << " or run clang-tidy-" << ASYNCSTATE_LLVM_VERSION_MAJOR << "\n";
    std::exit(EXIT_FAILURE);
  }
};

const HostVersionCheck Check;

}  // namespace
