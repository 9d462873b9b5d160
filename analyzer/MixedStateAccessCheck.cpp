#include "MixedStateAccessCheck.h"

#include "utils/Defaults.h"
#include "utils/Matching.h"
#include "utils/UdfClasses.h"

#include "clang/AST/ASTContext.h"
#include "clang/AST/RecursiveASTVisitor.h"
#include "clang/ASTMatchers/ASTMatchFinder.h"
#include "llvm/ADT/MapVector.h"

using namespace clang::ast_matchers;

namespace clang::tidy::asyncstate {

namespace {

constexpr unsigned MixedKind = 0;

struct Uses {
  const CXXMemberCallExpr* FirstSync = nullptr;
  const CXXMemberCallExpr* FirstAsync = nullptr;
};

// The state member a call is made on: `total_->value()`, `(*total_).value()`,
// `total_.value()` for a reference or object member.
const FieldDecl* stateMemberOf(const CXXMemberCallExpr* Call) {
  const Expr* Object = Call->getImplicitObjectArgument();
  if (!Object) return nullptr;
  Object = Object->IgnoreParenImpCasts();
  if (const auto* Deref = dyn_cast<UnaryOperator>(Object); Deref && Deref->getOpcode() == UO_Deref)
    Object = Deref->getSubExpr()->IgnoreParenImpCasts();
  const auto* Member = dyn_cast<MemberExpr>(Object);
  if (!Member || !isa<CXXThisExpr>(Member->getBase()->IgnoreParenImpCasts())) return nullptr;
  return dyn_cast<FieldDecl>(Member->getMemberDecl());
}

// Every state call of one UDF class's member functions, lambdas included: one walk
// per function body.
class StateCallCollector : public RecursiveASTVisitor<StateCallCollector> {
 public:
  StateCallCollector(const std::vector<std::string>& StateTypes, const std::vector<std::string>& SyncMethods,
                     const AsyncScopeResolver& Resolver, const SourceManager& SM)
      : StateTypes(StateTypes), SyncMethods(SyncMethods), Resolver(Resolver), SM(SM) {}

  llvm::MapVector<const FieldDecl*, Uses> ByState;

  bool TraverseCXXRecordDecl(CXXRecordDecl*) { return true; }
  // Operands that are never evaluated access nothing.
  bool TraverseUnaryExprOrTypeTraitExpr(UnaryExprOrTypeTraitExpr*) { return true; }
  bool TraverseCXXNoexceptExpr(CXXNoexceptExpr*) { return true; }
  bool TraverseRequiresExpr(RequiresExpr*) { return true; }
  bool TraverseDecltypeTypeLoc(DecltypeTypeLoc) { return true; }
  bool TraverseTypeOfExprTypeLoc(TypeOfExprTypeLoc) { return true; }
  bool TraverseCXXTypeidExpr(CXXTypeidExpr* Typeid) {
    return !Typeid->isPotentiallyEvaluated() || RecursiveASTVisitor::TraverseCXXTypeidExpr(Typeid);
  }
  bool VisitCXXMemberCallExpr(CXXMemberCallExpr* Call) {
    const CXXMethodDecl* Method = Call->getMethodDecl();
    if (!Method || !Method->getDeclName().isIdentifier()) return true;
    const FieldDecl* State = stateMemberOf(Call);
    if (!State || !isSameOrDerivedFrom(pointeeRecord(State->getType()), StateTypes)) return true;
    Uses& Found = ByState[State];
    if (contains(SyncMethods, Method->getName()))
      keepFirst(Found.FirstSync, Call);
    else if (Resolver.isFutureClass(Method->getReturnType()->getAsCXXRecordDecl()))
      keepFirst(Found.FirstAsync, Call);
    return true;
  }

 private:
  void keepFirst(const CXXMemberCallExpr*& Slot, const CXXMemberCallExpr* Call) {
    if (!Slot || SM.isBeforeInTranslationUnit(Call->getExprLoc(), Slot->getExprLoc())) Slot = Call;
  }

  const std::vector<std::string>& StateTypes;
  const std::vector<std::string>& SyncMethods;
  const AsyncScopeResolver& Resolver;
  const SourceManager& SM;
};

}  // namespace

MixedStateAccessCheck::MixedStateAccessCheck(StringRef Name, ClangTidyContext* Context)
    : AsyncStateCheck(Name, Context),
      StateTypes(parseQualifiedNames(Options.getLocalOrGlobal("StateTypes", defaults::StateTypes))),
      SyncMethods(parseList(Options.getLocalOrGlobal("SyncMethods", defaults::SyncMethods))) {}

void MixedStateAccessCheck::storeOptions(ClangTidyOptions::OptionMap& Opts) {
  AsyncStateCheck::storeOptions(Opts);
  Options.store(Opts, "StateTypes", serializeQualifiedNames(StateTypes));
  Options.store(Opts, "SyncMethods", serializeList(SyncMethods));
}

void MixedStateAccessCheck::registerMatchers(MatchFinder* Finder) {
  traverseUserCodeOnly(Finder);
  Finder->addMatcher(translationUnitDecl().bind("tu"), this);
}

void MixedStateAccessCheck::check(const MatchFinder::MatchResult& Result) {
  forEachUdfClass(*Result.Context, Resolver, Names,
                  [&](const CXXRecordDecl* Record) { checkClass(Record, *Result.SourceManager); });
}

void MixedStateAccessCheck::checkClass(const CXXRecordDecl* Record, const SourceManager& SM) {
  StateCallCollector Collector(StateTypes, SyncMethods, Resolver, SM);
  for (const CXXMethodDecl* Method : Record->methods())
    if (const FunctionDecl* Definition = Method->getDefinition(); Definition && Definition->getBody())
      Collector.TraverseStmt(Definition->getBody());
  for (const auto& [State, Found] : Collector.ByState) {
    if (!Found.FirstSync || !Found.FirstAsync) continue;
    const SourceLocation Loc = Found.FirstSync->getExprLoc();
    if (!Reported.firstTime(Loc, MixedKind)) continue;
    diag(Loc,
         "state %0 is accessed both synchronously ('%1' here) and asynchronously in %2; mixing the two on one "
         "state is not supported: migrate every access of %0 to the async API")
        << State << Found.FirstSync->getMethodDecl()->getName() << Record;
    diag(Found.FirstAsync->getExprLoc(), "asynchronous access ('%0') here", DiagnosticIDs::Note)
        << Found.FirstAsync->getMethodDecl()->getName();
  }
}

}  // namespace clang::tidy::asyncstate
