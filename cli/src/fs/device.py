import os
from binascii import hexlify as _X
try:
 from binascii import a2b_base64 as _B,b2a_base64 as _E
except ImportError:
 _B=_E=None
try:
 import hashlib as _HL
 _HL.sha256
 _HK='sha256'
except (ImportError,AttributeError):
 try:
  from binascii import crc32 as _CR
  _HK='crc32'
 except ImportError:
  _HK='none'
try:
 import deflate as _dz,io as _io
 def _Z(d):return _dz.DeflateIO(_io.BytesIO(_B(d)),_dz.RAW,11).read()
 _ZK=1 if _B else 0
except ImportError:
 _ZK=0
_F=None
_FP=''
_U=bytearray(512)
def _D(p):return p or '.'
def _J(d,n):return d+n if d.endswith('/') else (d+'/'+n if d else n)
def _N(n):return _X(n.encode()).decode()
def _ST(p):
 try:return os.stat(_D(p))
 except OSError as e:
  if e.args[0]==2:return None
  raise
def _S(q):
 h=_HL.sha256() if _HK=='sha256' else 0
 m=memoryview(_U)
 with open(q,'rb') as f:
  while 1:
   n=f.readinto(_U)
   if not n:break
   if _HK=='sha256':h.update(m[:n])
   elif _HK=='crc32':h=_CR(m[:n],h)
 if _HK=='sha256':return _X(h.digest()).decode()
 if _HK=='crc32':return '%08x'%(h&0xffffffff)
 return '-'
def _L(p,h,r):
 s=_ST(p)
 if s is None:print('none');return
 if not s[0]&0x4000:print('f',s[6],_S(_D(p)) if h else '-','');return
 def w(d,rel):
  for e in sorted(os.ilistdir(_D(d))):
   n=e[0];q=_J(d,n);x=_J(rel,n)
   if e[1]&0x4000:
    print('d',0,'-',_N(x))
    if r:w(q,x)
   else:
    print('f',e[3] if len(e)>3 and e[3]>=0 else os.stat(q)[6],_S(q) if h else '-',_N(x))
 w(p,'')
def _R(p):
 with open(_D(p),'rb') as f:
  while 1:
   b=f.read(768)
   if not b:break
   print(_E(b).decode() if _E else _X(b).decode(),end='' if _E else '\n')
def _O(p):
 global _F,_FP
 _FP=p;_F=None;_F=open(p+'.mpfr-part','wb')
def _A():
 global _F
 if _F:
  try:_F.close()
  except OSError:pass
 _F=None
 try:os.remove(_FP+'.mpfr-part')
 except OSError:pass
def _W(d):
 try:_F.write(d)
 except:
  _A();raise
def _C(i):
 global _F
 try:
  _F.close();_F=None
  os.rename(_FP+'.mpfr-part',_FP)
 except:
  _A();raise
 print(i)
def _M(p):
 try:os.mkdir(p)
 except OSError as e:
  if e.args[0]!=17 or not os.stat(p)[0]&0x4000:raise
def _RM(p,r):
 if os.stat(_D(p))[0]&0x4000:
  if not r:raise OSError(21)
  for e in list(os.ilistdir(_D(p))):_RM(_J(p,e[0]),1)
  os.rmdir(p)
 else:os.remove(p)
def _DF(p):
 s=os.statvfs(_D(p))
 print(s[1]*s[2],s[1]*s[3],s[1]*s[4])
print('mpfr-fs',_HK,1 if _E else 0,_ZK)
