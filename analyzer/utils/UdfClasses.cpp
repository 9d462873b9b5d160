#include "utils/UdfClasses.h"

#include "utils/Matching.h"
#include "utils/UserCodeParents.h"

#include "clang/AST/DeclTemplate.h"

namespace clang::tidy::asyncstate {

namespace {

void visitContext(const DeclContext* Context, const SourceManager& SM, AsyncScopeResolver& Resolver,
                  const ApiNames& Names, llvm::function_ref<void(const CXXRecordDecl*)> Visit) {
  auto visitRecord = [&](const CXXRecordDecl* Record) {
    if (Record && Record->isThisDeclarationADefinition() && !Record->isLambda() && Resolver.isUdfClass(Record))
      Visit(Record);
  };
  for (const Decl* D : Context->decls()) {
    if (!isUserDecl(D, SM, Names.IgnoredNamespaces)) continue;
    if (const auto* Namespace = dyn_cast<NamespaceDecl>(D)) {
      visitContext(Namespace, SM, Resolver, Names, Visit);
    } else if (const auto* Linkage = dyn_cast<LinkageSpecDecl>(D)) {
      visitContext(Linkage, SM, Resolver, Names, Visit);
    } else if (const auto* Template = dyn_cast<ClassTemplateDecl>(D)) {
      if (!Template->isThisDeclarationADefinition()) continue;
      visitRecord(Template->getTemplatedDecl());
      for (const ClassTemplateSpecializationDecl* Spec : Template->specializations()) visitRecord(Spec);
    } else if (const auto* Record = dyn_cast<CXXRecordDecl>(D); Record && !isa<ClassTemplateSpecializationDecl>(D)) {
      visitRecord(Record);
    } else if (const auto* Spec = dyn_cast<ClassTemplateSpecializationDecl>(D);
               Spec && Spec->getSpecializationKind() == TSK_ExplicitSpecialization) {
      visitRecord(Spec);
    }
  }
}

}  // namespace

void forEachUdfClass(ASTContext& Ctx, AsyncScopeResolver& Resolver, const ApiNames& Names,
                     llvm::function_ref<void(const CXXRecordDecl*)> Visit) {
  visitContext(Ctx.getTranslationUnitDecl(), Ctx.getSourceManager(), Resolver, Names, Visit);
}

}  // namespace clang::tidy::asyncstate
