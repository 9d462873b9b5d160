#include "SyncStateAccessCheck.h"

#include "utils/Defaults.h"
#include "utils/Matching.h"
#include "utils/UdfInventory.h"

#include "clang/AST/ASTContext.h"
#include "clang/ASTMatchers/ASTMatchFinder.h"
#include "clang/Lex/Lexer.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/Regex.h"

using namespace clang::ast_matchers;

namespace clang::tidy::asyncstate {

namespace {

enum class Blocking { None, StateMethod, Annotated, Listed, FutureWait };

// Kinds for ReportedOnce: a call is reported once whichever way it matched.
constexpr unsigned CallKind = 0;

bool returnsNodiscard(const FunctionDecl* Function) {
  if (Function->hasAttr<WarnUnusedResultAttr>()) return true;
  const auto* Record = Function->getReturnType()->getAsCXXRecordDecl();
  if (!Record) return false;
  if (Record->hasAttr<WarnUnusedResultAttr>()) return true;
  if (const auto* Spec = dyn_cast<ClassTemplateSpecializationDecl>(Record))
    return Spec->getSpecializedTemplate()->getTemplatedDecl()->hasAttr<WarnUnusedResultAttr>();
  return false;
}

// `s.update(v);` used as a statement: nothing reads the result.
bool isDiscardedStatement(const CallExpr* Call, ASTContext& Ctx, const AsyncScopeResolver& Resolver) {
  DynTypedNode Current = DynTypedNode::create(*Call);
  for (unsigned Depth = 0; Depth < 4; ++Depth) {
    auto Parent = Resolver.parentOf(Current, Ctx);
    if (!Parent) return false;
    if (Parent->get<CompoundStmt>()) return true;
    if (!Parent->get<ExprWithCleanups>()) return false;
    Current = *Parent;
  }
  return false;
}

std::string absolutePath(const SourceManager& SM, SourceLocation Loc) {
  OptionalFileEntryRef File = SM.getFileEntryRefForID(SM.getFileID(Loc));
  if (!File) return {};
  StringRef Real = File->getFileEntry().tryGetRealPathName();
  SmallString<256> Path(Real.empty() ? File->getName() : Real);
  llvm::sys::fs::make_absolute(Path);
  llvm::sys::path::remove_dots(Path, true);
  return std::string(Path);
}

}  // namespace

// A project's own base template between KeyedProcessFunction and the UDFs
// (adding counters, say) processes nothing itself: it is not a UDF to migrate.
// Class-template UDFs declare processElement (or inherit it from such a base).
bool SyncStateAccessCheck::processesRecords(const CXXRecordDecl* Record) const {
  Record = Record ? Record->getDefinition() : nullptr;
  if (!Record || Resolver.isInLibrary(Record)) return false;
  for (const CXXMethodDecl* Method : Record->methods())
    if (Method->getDeclName().isIdentifier() && Method->getName() == "processElement") return true;
  for (const CXXBaseSpecifier& Base : Record->bases())
    if (processesRecords(Base.getType()->getAsCXXRecordDecl())) return true;
  return false;
}

SyncStateAccessCheck::SyncStateAccessCheck(StringRef Name, ClangTidyContext* Context)
    : AsyncStateCheck(Name, Context),
      StateTypes(parseQualifiedNames(Options.getLocalOrGlobal("StateTypes", defaults::StateTypes))),
      SyncMethods(parseList(Options.get("SyncMethods", defaults::SyncMethods))),
      BlockingFunctions(parseQualifiedNames(Options.get("BlockingFunctions", defaults::SyncBlockingFunctions))),
      FutureWaitMethods(parseList(Options.getLocalOrGlobal("FutureWaitMethods", defaults::FutureWaitMethods))),
      StdFutureTypes(parseQualifiedNames(Options.getLocalOrGlobal("StdFutureTypes", defaults::StdFutureTypes))),
      BlockingAnnotation(Options.getLocalOrGlobal("BlockingAnnotation", defaults::BlockingAnnotation).str()) {}

void SyncStateAccessCheck::storeOptions(ClangTidyOptions::OptionMap& Opts) {
  AsyncStateCheck::storeOptions(Opts);
  Options.store(Opts, "StateTypes", serializeQualifiedNames(StateTypes));
  Options.store(Opts, "SyncMethods", serializeList(SyncMethods));
  Options.store(Opts, "BlockingFunctions", serializeQualifiedNames(BlockingFunctions));
  Options.store(Opts, "FutureWaitMethods", serializeList(FutureWaitMethods));
  Options.store(Opts, "StdFutureTypes", serializeQualifiedNames(StdFutureTypes));
  Options.store(Opts, "BlockingAnnotation", BlockingAnnotation);
}

void SyncStateAccessCheck::registerMatchers(MatchFinder* Finder) {
  std::vector<std::string> Candidates = SyncMethods;
  Candidates.insert(Candidates.end(), FutureWaitMethods.begin(), FutureWaitMethods.end());
  for (const std::string& Name : BlockingFunctions) Candidates.push_back(lastComponent(Name).str());
  Finder->addMatcher(
      callExpr(unless(isExpansionInSystemHeader()),
               callee(functionDecl(anyOf(hasAnyName(refs(Candidates)), hasAttr(attr::Annotate))).bind("callee")))
          .bind("call"),
      this);
  if (udfInventory())
    Finder->addMatcher(cxxRecordDecl(isDefinition(), unless(isExpansionInSystemHeader())).bind("record"), this);
}

void SyncStateAccessCheck::check(const MatchFinder::MatchResult& Result) {
  if (const auto* Record = Result.Nodes.getNodeAs<CXXRecordDecl>("record")) {
    recordUdfClass(Record, *Result.SourceManager);
    return;
  }
  checkCall(Result.Nodes.getNodeAs<CallExpr>("call"), *Result.Context);
}

void SyncStateAccessCheck::checkCall(const CallExpr* Call, ASTContext& Ctx) {
  const auto* Callee = dyn_cast_or_null<FunctionDecl>(Call->getCalleeDecl());
  if (!Callee || !Callee->getDeclName().isIdentifier()) return;
  const auto* Member = dyn_cast<CXXMemberCallExpr>(Call);
  const CXXRecordDecl* Object = Member ? objectRecord(Member) : nullptr;
  const StringRef Name = Callee->getName();

  Blocking Kind = Blocking::None;
  if (Member && contains(SyncMethods, Name) &&
      (isSameOrDerivedFrom(Object, StateTypes) ||
       isSameOrDerivedFrom(Member->getMethodDecl()->getParent(), StateTypes)))
    Kind = Blocking::StateMethod;
  else if (hasAnnotation(Callee, BlockingAnnotation))
    Kind = Blocking::Annotated;
  else if (matchesQualifiedName(Callee, BlockingFunctions))
    Kind = Blocking::Listed;
  else if (Member && contains(FutureWaitMethods, Name) &&
           (isSameOrDerivedFrom(Object, StdFutureTypes) || Resolver.isFutureClass(Object)))
    Kind = Blocking::FutureWait;
  if (Kind == Blocking::None) return;

  const Scope Where = Resolver.classify(*Call, Ctx);
  if (!Where.isAsync()) return;
  // Inside continuations a future wait is asyncstate-blocking-callback's finding.
  if (Kind == Blocking::FutureWait && Where.runsAsContinuation()) return;
  const SourceLocation Loc = Call->getExprLoc();
  if (!Reported.firstTime(Loc, CallKind)) return;

  if (Kind == Blocking::FutureWait) {
    diag(Loc,
         "waiting on a future with '%0' blocks the task thread in async UDF code; chain a continuation "
         "or co_await it instead")
        << Name;
    return;
  }

  const CXXRecordDecl* Owner = Object ? Object : (Member ? Member->getMethodDecl()->getParent() : nullptr);
  const std::string AsyncName = asyncCounterpartName(Name);
  const CXXMethodDecl* Counterpart = Owner ? findMethod(Owner, AsyncName) : nullptr;
  const std::string What = Kind == Blocking::StateMethod ? "synchronous state access" : "call to blocking function";
  auto Diag = Counterpart ? diag(Loc, "%0 '%1' blocks the task thread in async UDF code; use '%2' instead")
                          : diag(Loc, "%0 '%1' blocks the task thread in async UDF code");
  Diag << What << (Kind == Blocking::StateMethod ? Name.str() : Callee->getQualifiedNameAsString());
  if (!Counterpart) return;
  Diag << AsyncName;

  // Only the mechanical case: a void mutation used as a statement, written in
  // the file (not produced by a macro), whose async twin takes the same arguments.
  const unsigned Args = Call->getNumArgs();
  if (!Callee->getReturnType()->isVoidType() || !isDiscardedStatement(Call, Ctx, Resolver) || !Loc.isFileID() ||
      !Call->getBeginLoc().isFileID() || Counterpart->getMinRequiredArguments() > Args ||
      Counterpart->getNumParams() < Args)
    return;
  Diag << FixItHint::CreateReplacement(CharSourceRange::getTokenRange(Loc, Loc), AsyncName);
  // The future is fire-and-forget here (a failure still reaches the error handler);
  // `(void)` keeps [[nodiscard]] futures warning-free.
  if (returnsNodiscard(Counterpart)) Diag << FixItHint::CreateInsertion(Call->getBeginLoc(), "(void)");
}

void SyncStateAccessCheck::recordUdfClass(const CXXRecordDecl* Record, const SourceManager& SM) {
  // A class template is reported once, as written: its instantiations (explicit
  // `template class X<T>;` lines included) share its source and its findings.
  if (Record->isLambda() || isTemplateInstantiation(Record->getTemplateSpecializationKind()) ||
      !Resolver.isUdfClass(Record) || Resolver.isInLibrary(Record) ||
      (Record->getDescribedClassTemplate() && !processesRecords(Record)))
    return;
  UdfClassRecord Entry;
  Entry.Name = Record->getQualifiedNameAsString();
  const SourceLocation Begin = SM.getExpansionLoc(Record->getBeginLoc());
  Entry.File = absolutePath(SM, Begin);
  Entry.Line = SM.getExpansionLineNumber(Begin);
  Entry.Reported = SM.isInMainFile(Begin);
  if (!Entry.Reported) {
    const std::optional<std::string>& HeaderFilter = TidyContext->getOptions().HeaderFilterRegex;
    Entry.Reported = HeaderFilter && !HeaderFilter->empty() && llvm::Regex(*HeaderFilter).match(Entry.File);
  }
  auto addRange = [&](SourceRange Range) {
    const SourceLocation B = SM.getExpansionLoc(Range.getBegin());
    const SourceLocation E = SM.getExpansionLoc(Range.getEnd());
    if (SM.getFileID(B) != SM.getFileID(E)) return;
    Entry.Ranges.push_back({absolutePath(SM, B), {SM.getFileOffset(B), SM.getFileOffset(E)}});
  };
  addRange(Record->getSourceRange());
  for (const CXXMethodDecl* Method : Record->methods())
    if (const FunctionDecl* Definition = Method->getDefinition(); Definition && Definition->isOutOfLine())
      addRange(Definition->getSourceRange());
  udfInventory()->record(std::move(Entry));
}

}  // namespace clang::tidy::asyncstate
