#include "utils/UserCodeParents.h"

#include "utils/Matching.h"

#include "clang/AST/RecursiveASTVisitor.h"

namespace clang::tidy::asyncstate {

namespace {

class ParentIndexer : public RecursiveASTVisitor<ParentIndexer> {
  using Base = RecursiveASTVisitor<ParentIndexer>;

 public:
  ParentIndexer(llvm::DenseMap<const void*, DynTypedNode>& Parents, llvm::DenseSet<const Stmt*>& TypeOperands)
      : Parents(Parents), TypeOperands(TypeOperands) {}

  bool shouldVisitTemplateInstantiations() const { return true; }
  bool shouldVisitImplicitCode() const { return true; }

  bool TraverseDecl(Decl* D) {
    if (!D) return true;
    return traverse(D, DynTypedNode::create(*D), [&] { return Base::TraverseDecl(D); });
  }
  // Without the data-recursion queue parameter: RecursiveASTVisitor then calls
  // this for every statement, so the stack always holds the current parent.
  bool TraverseStmt(Stmt* S) {
    if (!S) return true;
    return traverse(S, DynTypedNode::create(*S), [&] { return Base::TraverseStmt(S); });
  }
  bool TraverseDecltypeTypeLoc(DecltypeTypeLoc TL) {
    TypeOperands.insert(TL.getUnderlyingExpr());
    return Base::TraverseDecltypeTypeLoc(TL);
  }
  bool TraverseTypeOfExprTypeLoc(TypeOfExprTypeLoc TL) {
    TypeOperands.insert(TL.getUnderlyingExpr());
    return Base::TraverseTypeOfExprTypeLoc(TL);
  }

 private:
  template <class F>
  bool traverse(const void* Key, const DynTypedNode& Node, F Children) {
    // A node reachable along several paths (template instantiations share
    // some) keeps the first parent, as clang's map lists it first.
    if (!Stack.empty()) Parents.try_emplace(Key, Stack.back());
    Stack.push_back(Node);
    const bool Result = Children();
    Stack.pop_back();
    return Result;
  }

  llvm::DenseMap<const void*, DynTypedNode>& Parents;
  llvm::DenseSet<const Stmt*>& TypeOperands;
  std::vector<DynTypedNode> Stack;
};

}  // namespace

bool isUserDecl(const Decl* D, const SourceManager& SM, const std::vector<std::string>& IgnoredNamespaces) {
  const SourceLocation Loc = D->getLocation();
  if (Loc.isInvalid() || SM.isInSystemHeader(SM.getExpansionLoc(Loc))) return false;
  if (const auto* Namespace = dyn_cast<NamespaceDecl>(D))
    return !Namespace->isStdNamespace() && !matchesQualifiedName(Namespace, IgnoredNamespaces);
  return true;
}

UserCodeParents& UserCodeParents::instance() {
  static UserCodeParents Shared;
  return Shared;
}

void UserCodeParents::reset() {
  Built = false;
  Restricted = false;
  Roots.clear();
  Parents.clear();
  TypeOperands.clear();
}

void UserCodeParents::build(ASTContext& Ctx, const std::vector<std::string>& IgnoredNamespaces) {
  Built = true;
  const SourceManager& SM = Ctx.getSourceManager();
  ParentIndexer Indexer(Parents, TypeOperands);
  for (Decl* D : Ctx.getTranslationUnitDecl()->decls()) {
    if (!isUserDecl(D, SM, IgnoredNamespaces)) continue;
    Roots.push_back(D);
    Indexer.TraverseDecl(D);
  }
}

const std::vector<Decl*>& UserCodeParents::userDecls(ASTContext& Ctx,
                                                     const std::vector<std::string>& IgnoredNamespaces) {
  if (!Built) build(Ctx, IgnoredNamespaces);
  return Roots;
}

bool UserCodeParents::isTypeOperand(const Stmt* S, ASTContext& Ctx, const std::vector<std::string>& IgnoredNamespaces) {
  if (!Built) build(Ctx, IgnoredNamespaces);
  return TypeOperands.contains(S);
}

void UserCodeParents::restrictTraversal(ASTContext& Ctx, const std::vector<std::string>& IgnoredNamespaces) {
  if (Restricted) return;
  Restricted = true;
  Ctx.setTraversalScope(userDecls(Ctx, IgnoredNamespaces));
}

std::optional<DynTypedNode> UserCodeParents::parentOf(const DynTypedNode& Node, ASTContext& Ctx,
                                                      const std::vector<std::string>& IgnoredNamespaces) {
  if (!Built) build(Ctx, IgnoredNamespaces);
  const void* Key = Node.getMemoizationData();
  if (!Key) return std::nullopt;
  auto It = Parents.find(Key);
  if (It == Parents.end()) return std::nullopt;
  return It->second;
}

}  // namespace clang::tidy::asyncstate
