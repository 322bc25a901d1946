// The measurement behind the choice of the bf16 kernels (docs/performance.md, "bfloat16
// products"): single-threaded GFLOP/s at the model's product shapes of OpenBLAS sgemm, the CBF16
// kernel (fp32 operands, rounded to bf16 in its packing), oneDNN's bf16 matmul on operands already
// in bf16, and the same after fp32 -> bf16 reorders of both operands; the variants alternate per
// repetition in one process, medians of 21. oneDNN is not a dependency of the project:
//   apt-get install -y libdnnl-dev
//   clang -O3 -c -ISources/CBF16/include Sources/CBF16/bf16gemm.c -o /tmp/cbf16.o
//   clang++ -O2 -std=c++17 -ISources/CBF16/include scripts/bf16_gemm_compare.cpp /tmp/cbf16.o \
//       -o /tmp/bf16_gemm_compare -ldnnl -lopenblas
//   OMP_NUM_THREADS=1 /tmp/bf16_gemm_compare
#include <dnnl.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <vector>
#include <cblas.h>
extern "C" {
#include "cbf16.h"
}
using namespace dnnl;
static double now(){return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();}
int main(int argc,char**argv){
  openblas_set_num_threads(1);
  engine eng(engine::kind::cpu,0); stream st(eng);
  struct S{int m,n,k,ta,tb; const char*w;};
  std::vector<S> s={
   {32,2048,32,0,0,"Winograd 32ch 32x32 (block)"},{64,1024,64,0,0,"Winograd 64ch 16x16"},{128,512,128,0,0,"Winograd 128ch 8x8"},
   {128,128,128,0,0,"Winograd 128ch 4x4"},{32,256,32,0,0,"Winograd 32ch, 1 image"},
   {32,32,2048,0,1,"Winograd dW 32ch"},{64,64,1024,0,1,"Winograd dW 64ch"},{128,128,512,0,1,"Winograd dW 128ch"},
   {32,1024,288,0,0,"im2col fwd 32ch"},{64,1024,576,0,0,"im2col fwd 64ch"},{288,1024,32,1,0,"im2col dX 32ch"},
   {32,288,1024,0,1,"im2col dW 32ch"},{1024,32,288,0,1,"bench ops"},{1024,32,288,1,1,"bench ops"},
   {288,32,1024,0,1,"bench ops"},{32,4096,288,0,0,"bench ops"},{4096,32,288,1,1,"bench ops"},
   {1024,128,128,0,1,"linear-like"},{512,512,512,0,0,"square 512"}};
  printf("%-28s %5s %5s %5s %2s %2s | %7s %7s %7s %7s | %7s\n","product","m","n","k","tA","tB","sgemm","CBF16","dnnl","dnnl+cv","rel.err");
  for(auto q:s){
    int m=q.m,n=q.n,k=q.k,lda=q.ta?m:k,ldb=q.tb?k:n;
    using dt=memory::data_type; using tag=memory::format_tag;
    memory::desc af({m,k},dt::f32,q.ta?tag::ba:tag::ab), bf({k,n},dt::f32,q.tb?tag::ba:tag::ab);
    memory::desc ah({m,k},dt::bf16,q.ta?tag::ba:tag::ab), bh({k,n},dt::bf16,q.tb?tag::ba:tag::ab), cf({m,n},dt::f32,tag::ab);
    memory A(af,eng),B(bf,eng),Ah(ah,eng),Bh(bh,eng),C(cf,eng);
    float*a=(float*)A.get_data_handle(); for(long i=0;i<(long)m*k;i++)a[i]=rand()/(float)RAND_MAX-.5f;
    float*b=(float*)B.get_data_handle(); for(long i=0;i<(long)k*n;i++)b[i]=rand()/(float)RAND_MAX-.5f;
    std::vector<float> c(m*n),c2(m*n);
    auto pd=matmul::primitive_desc(matmul::desc(ah,bh,cf),eng); matmul mm(pd);
    reorder ra(A,Ah), rb(B,Bh);
    double flop=2.0*m*n*k; int reps=(int)(1e8/flop)+1;
    std::vector<double> t[4];
    for(int r=0;r<21;r++) for(int v=0;v<4;v++){
      double x=now();
      for(int z=0;z<reps;z++){
        if(v==0) cblas_sgemm(CblasRowMajor,q.ta?CblasTrans:CblasNoTrans,q.tb?CblasTrans:CblasNoTrans,m,n,k,1,a,lda,b,ldb,0,c.data(),n);
        else if(v==1) cbf16_gemm(q.ta,q.tb,m,n,k,1,a,lda,b,ldb,0,c2.data(),n);
        else if(v==2) mm.execute(st,{{DNNL_ARG_SRC,Ah},{DNNL_ARG_WEIGHTS,Bh},{DNNL_ARG_DST,C}});
        else { ra.execute(st,A,Ah); rb.execute(st,B,Bh); mm.execute(st,{{DNNL_ARG_SRC,Ah},{DNNL_ARG_WEIGHTS,Bh},{DNNL_ARG_DST,C}}); }
      }
      st.wait(); t[v].push_back((now()-x)/reps);
    }
    double g[4]; for(int v=0;v<4;v++){std::sort(t[v].begin(),t[v].end()); g[v]=flop/t[v][10]/1e9;}
    double e=0,nn=0; for(long i=0;i<(long)m*n;i++){e+=(c[i]-c2[i])*(c[i]-c2[i]);nn+=c[i]*c[i];}
    printf("%-28s %5d %5d %5d %2d %2d | %7.0f %7.0f %7.0f %7.0f | %7.4f\n",q.w,m,n,k,q.ta,q.tb,g[0],g[1],g[2],g[3],std::sqrt(e/nn));
    fflush(stdout);
  }
}
