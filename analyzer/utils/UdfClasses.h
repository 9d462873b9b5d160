// The UDF classes a translation unit defines in user code, found by walking the
// top-level declarations outside system headers and the ignored (library)
// namespaces. Checks that examine whole UDF classes use it from a
// translationUnitDecl() matcher instead of matching every class definition: a
// cxxRecordDecl() matcher is evaluated on each of the thousands of classes the
// standard library and asyncstate headers instantiate.
#pragma once

#include "utils/AsyncScope.h"

#include "clang/AST/ASTContext.h"
#include "llvm/ADT/STLFunctionalExtras.h"

namespace clang::tidy::asyncstate {

// Calls Visit for each UDF class definition at namespace scope in user code:
// plain classes, class templates as written, and their instantiations.
void forEachUdfClass(ASTContext& Ctx, AsyncScopeResolver& Resolver, const ApiNames& Names,
                     llvm::function_ref<void(const CXXRecordDecl*)> Visit);

}  // namespace clang::tidy::asyncstate
