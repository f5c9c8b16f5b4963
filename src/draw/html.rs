//! The picture in one self-contained page: the SVG inline, a few lines of script for zoom
//! (wheel, buttons), pan (drag) and the details of whatever is under the pointer or was
//! clicked. No network: no fonts, scripts or styles are fetched.

use super::model::Model;

/// The page for a model.
pub fn render(model: &Model, title: &str) -> String {
    let svg = super::svg::render(model);
    let mut s = String::with_capacity(svg.len() + PAGE.len() + 256);
    let title = super::svg::escape(title);
    let (head, tail) = PAGE.split_once("<!--SVG-->").unwrap_or((PAGE, ""));
    s.push_str(&head.replace("<!--TITLE-->", &title));
    s.push_str(&svg);
    s.push_str(tail);
    s
}

const PAGE: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title><!--TITLE--></title>
<style>
body{margin:0;font:14px Helvetica,Arial,sans-serif;color:#212529;background:#f1f3f5}
header{display:flex;gap:12px;align-items:center;padding:8px 14px;background:#343a40;color:#fff}
header h1{font-size:16px;margin:0 12px 0 0}
button{font:inherit;padding:3px 10px;border:1px solid #adb5bd;border-radius:4px;background:#fff;cursor:pointer}
#wrap{position:absolute;top:46px;bottom:64px;left:0;right:0;overflow:hidden;cursor:grab;background:#fff}
#wrap.drag{cursor:grabbing}
#stage{transform-origin:0 0}
#details{position:absolute;bottom:0;left:0;right:0;height:64px;box-sizing:border-box;padding:8px 14px;
  background:#fff;border-top:1px solid #dee2e6;overflow:auto;white-space:pre-wrap}
#details b{color:#1c7ed6}
</style>
</head>
<body>
<header><h1><!--TITLE--></h1>
<button id="zin" title="zoom in (wheel up)">+</button>
<button id="zout" title="zoom out (wheel down)">&minus;</button>
<button id="fit" title="fit the width">fit width</button>
<button id="one" title="actual size">1:1</button>
<span id="zoom">100%</span>
<span style="opacity:.7">drag to pan &middot; hover or click an arrow or a mark for its details</span>
</header>
<div id="wrap"><div id="stage">
<!--SVG--></div></div>
<div id="details">Hover over a message, an event or a cut.</div>
<script>
(function(){
  var wrap=document.getElementById('wrap'),stage=document.getElementById('stage');
  var details=document.getElementById('details'),zoomLabel=document.getElementById('zoom');
  var svg=stage.querySelector('svg');
  var k=1,x=0,y=0,pinned=null;
  function apply(){stage.style.transform='translate('+x+'px,'+y+'px) scale('+k+')';
    zoomLabel.textContent=Math.round(k*100)+'%';}
  function zoomAt(f,cx,cy){var nk=Math.min(8,Math.max(0.05,k*f));
    x=cx-(cx-x)*nk/k;y=cy-(cy-y)*nk/k;k=nk;apply();}
  wrap.addEventListener('wheel',function(e){e.preventDefault();
    var r=wrap.getBoundingClientRect();zoomAt(e.deltaY<0?1.15:1/1.15,e.clientX-r.left,e.clientY-r.top);},{passive:false});
  var drag=null;
  wrap.addEventListener('mousedown',function(e){drag={sx:e.clientX,sy:e.clientY,x:x,y:y,moved:false};wrap.classList.add('drag');});
  window.addEventListener('mousemove',function(e){if(!drag)return;
    var dx=e.clientX-drag.sx,dy=e.clientY-drag.sy;if(Math.abs(dx)+Math.abs(dy)>3)drag.moved=true;
    x=drag.x+dx;y=drag.y+dy;apply();});
  window.addEventListener('mouseup',function(){if(drag)wrap.classList.remove('drag');
    setTimeout(function(){drag=null;},0);});
  document.getElementById('zin').onclick=function(){zoomAt(1.25,wrap.clientWidth/2,wrap.clientHeight/2);};
  document.getElementById('zout').onclick=function(){zoomAt(0.8,wrap.clientWidth/2,wrap.clientHeight/2);};
  document.getElementById('one').onclick=function(){k=1;x=0;y=0;apply();};
  document.getElementById('fit').onclick=function(){k=wrap.clientWidth/svg.width.baseVal.value;x=0;y=0;apply();};
  function item(t){while(t&&t!==svg){if(t.tagName==='g'&&t.querySelector(':scope>title'))return t;t=t.parentNode;}return null;}
  function show(g){if(!g){return;}var t=g.querySelector(':scope>title').textContent;
    var kind=(g.getAttribute('class')||'').split(' ')[0];details.innerHTML='';
    var b=document.createElement('b');b.textContent=kind+': ';details.appendChild(b);
    details.appendChild(document.createTextNode(t));}
  svg.addEventListener('mouseover',function(e){if(!pinned)show(item(e.target));});
  svg.addEventListener('click',function(e){if(drag&&drag.moved)return;var g=item(e.target);pinned=g;show(g);});
  if(svg.width.baseVal.value>wrap.clientWidth){document.getElementById('fit').onclick();}
  apply();
})();
</script>
</body>
</html>
"#;
