// Parents of the nodes in user code, for walking from a matched node up to its
// function, lambda or class. clang's own parent map (ASTContext::getParents)
// indexes the whole translation unit, the standard library's and asyncstate's
// headers with every template instantiation included, which costs more than all
// the checks together; none of those nodes is ever async UDF code. This index
// covers the top-level declarations outside system headers and outside the
// ignored (library) namespaces, with the same conventions as clang's map
// (implicit code and template instantiations included, lambda bodies under the
// closure's operator()). Nodes outside it have no parent.
#pragma once

#include "clang/AST/ASTContext.h"
#include "clang/AST/ASTTypeTraits.h"
#include "llvm/ADT/DenseMap.h"
#include "llvm/ADT/DenseSet.h"

#include <optional>
#include <string>
#include <vector>

namespace clang::tidy::asyncstate {

// Whether a top-level (or namespace-level) declaration is user code: spelled outside
// system headers and, for a namespace, neither std nor one of IgnoredNamespaces.
bool isUserDecl(const Decl* D, const SourceManager& SM, const std::vector<std::string>& IgnoredNamespaces);

class UserCodeParents {
 public:
  // One index per translation unit, shared by all checks.
  static UserCodeParents& instance();

  void reset();
  std::optional<DynTypedNode> parentOf(const DynTypedNode& Node, ASTContext& Ctx,
                                       const std::vector<std::string>& IgnoredNamespaces);
  // The top-level declarations the index covers.
  const std::vector<Decl*>& userDecls(ASTContext& Ctx, const std::vector<std::string>& IgnoredNamespaces);
  // An expression written inside a type (the operand of decltype or typeof): it is
  // never evaluated, and nothing else but its parent chain leads to it.
  bool isTypeOperand(const Stmt* S, ASTContext& Ctx, const std::vector<std::string>& IgnoredNamespaces);
  // Limits AST traversals of Ctx (the matchers', the parent map's) to userDecls(); once
  // per translation unit, whichever check asks first.
  void restrictTraversal(ASTContext& Ctx, const std::vector<std::string>& IgnoredNamespaces);

 private:
  void build(ASTContext& Ctx, const std::vector<std::string>& IgnoredNamespaces);

  bool Built = false;
  bool Restricted = false;
  std::vector<Decl*> Roots;
  llvm::DenseMap<const void*, DynTypedNode> Parents;
  llvm::DenseSet<const Stmt*> TypeOperands;
};

}  // namespace clang::tidy::asyncstate
